import should from "should";
import { Device, WireError } from "../../lib";
import { devicePair, stopAll } from "../helpers/devices";

/** device.request: a message whose sender waits for the receiving flow's reply, over the same request. */
describe("wire: requests and replies", () => {
  let a: Device | undefined;
  let b: Device | undefined;
  afterEach(async () => {
    await stopAll(a, b);
    a = b = undefined;
  });

  it("brings back what the receiving flow replied, typed as a message's payload, with the ack", async () => {
    ({ a, b } = await devicePair());
    b.onMessage("readings/last-hour", (message) => {
      setTimeout(() => message.reply!({ for: message.payload, values: [20.5, 21] }), 20); // answered later, not in the handler
    });
    const answer = await a.request("b", "readings/last-hour", "line-3");
    should(answer.reply).eql({ for: "line-3", values: [20.5, 21] });
    should(answer.ack).match({ topic: "readings/last-hour", receivers: 1 });
    should((await a.request("b", "readings/last-hour", Buffer.from([1, 2]))).reply).eql({ for: Buffer.from([1, 2]).toJSON(), values: [20.5, 21] });
  });

  it("a plain message carries no way to reply, and a request is not batched with messages", async () => {
    ({ a, b } = await devicePair());
    const replies: Array<boolean> = [];
    b.onMessage("mixed", (message) => {
      replies.push(message.reply !== undefined);
      message.reply?.("ok");
    });
    const results = await Promise.all([...Array.from({ length: 40 }, (_, i) => a!.send("b", "mixed", i)), a.request("b", "mixed", "ask")]);
    should(replies.filter(Boolean)).have.length(1);
    should((results[40] as { reply: unknown }).reply).equal("ok");
  });

  it("fails with TIMEOUT when the flow does not reply within the wait, and a late reply is refused at the receiver", async () => {
    ({ a, b } = await devicePair());
    let late: (() => void) | undefined;
    b.onMessage("slow", (message) => void (late = () => message.reply!("too late")));
    const err = await a.request("b", "slow", 1, { replyWithinMs: 200 }).then(
      () => undefined,
      (e: WireError) => e,
    );
    should(err).be.instanceOf(WireError);
    should(err!.code).equal("TIMEOUT");
    should(err!.message).match(/did not reply within 200 ms/);
    should(late).be.a.Function();
    should(() => late!()).throw(/answered already, or its sender stopped waiting/);
  });

  it("a request resent with the same id is handled once: the repeat gets the same reply", async () => {
    ({ a, b } = await devicePair());
    let handled = 0;
    b.onMessage("once", (message) => {
      handled += 1;
      setTimeout(() => message.reply!(handled), 100);
    });
    const [first, second] = await Promise.all([a.request("b", "once", 1, { id: "ask-1" }), a.request("b", "once", 1, { id: "ask-1" })]);
    const third = await a.request("b", "once", 1, { id: "ask-1" });
    should(handled).equal(1);
    should([first.reply, second.reply, third.reply]).eql([1, 1, 1]);
    should([first.ack.duplicate, second.ack.duplicate, third.ack.duplicate].filter(Boolean)).have.length(2);
  });

  it("refuses a second answer and one too large, each with its reason; the first answer goes back", async () => {
    ({ a, b } = await devicePair());
    const outcomes: string[] = [];
    b.onMessage("twice", (message) => {
      try {
        message.reply!(Buffer.alloc(1024 * 1024 + 1));
      } catch (err) {
        outcomes.push((err as WireError).code);
      }
      message.reply!("first");
      try {
        message.reply!("second");
      } catch (err) {
        outcomes.push((err as WireError).code);
      }
    });
    should((await a.request("b", "twice", 0)).reply).equal("first");
    should(outcomes).eql(["TOO_LARGE", "TIMEOUT"]);
  });

  it("with no receiver on the topic, fails at once with NO_RECEIVER; a retry once one listens is handled", async () => {
    ({ a, b } = await devicePair());
    const err = await a.request("b", "nobody", 1, { id: "r" }).then(() => undefined, (e: WireError) => e);
    should(err?.code).equal("NO_RECEIVER");
    b.onMessage("nobody", (message) => message.reply!("now"));
    should((await a.request("b", "nobody", 1, { id: "r" })).reply).equal("now");
  });

  it("refuses a wait outside 1 ms to 5 minutes before sending", async () => {
    ({ a, b } = await devicePair());
    await should(a.request("b", "t", 1, { replyWithinMs: 0 })).be.rejectedWith({ code: "BAD_REQUEST" });
    await should(a.request("b", "t", 1, { replyWithinMs: 300_001 })).be.rejectedWith({ code: "BAD_REQUEST" });
  });
});
