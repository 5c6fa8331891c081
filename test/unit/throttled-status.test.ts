import should from "should";
import type { Node, NodeStatus } from "node-red";
import { ThrottledStatus } from "../../nodes/shared/throttled-status";

function fakeNode(): { node: Node; shown: NodeStatus[]; next(): Promise<NodeStatus> } {
  const shown: NodeStatus[] = [];
  const waiters: Array<(status: NodeStatus) => void> = [];
  const node = {
    status(status: NodeStatus) {
      shown.push(status);
      waiters.splice(0).forEach((wake) => wake(status));
    },
  } as unknown as Node;
  return { node, shown, next: () => new Promise((resolve) => waiters.push(resolve)) };
}

describe("ThrottledStatus", () => {
  it("shows the first update at once and only the latest of a burst afterwards", async () => {
    const { node, shown, next } = fakeNode();
    const status = new ThrottledStatus(node, 30);
    let built = 0;
    const text = (n: number) => () => {
      built += 1;
      return { text: `sent ${n}` };
    };
    status.update(text(1));
    should(shown).eql([{ text: "sent 1" }]);
    for (let n = 2; n <= 100; n++) status.update(text(n));
    should(shown).have.length(1);
    should(await next()).eql({ text: "sent 100" });
    should(built).equal(2); // a burst builds (translates) one text, not a hundred
    status.stop();
  });

  it("shows errors at once, replacing a pending update, and stop() drops what is pending", async () => {
    const { node, shown } = fakeNode();
    const status = new ThrottledStatus(node, 30);
    status.update(() => ({ text: "first" }));
    status.update(() => ({ text: "pending" }));
    status.now({ fill: "red", text: "refused" });
    should(shown.map((s) => s.text)).eql(["first", "refused"]);
    status.update(() => ({ text: "late" }));
    status.stop();
    await new Promise((resolve) => setTimeout(resolve, 60));
    should(shown.map((s) => s.text)).eql(["first", "refused"]);
  });
});
