import should from "should";
import type { Node, NodeMessage } from "node-red";
import { onInput } from "../../bench/embedded-node-red";

// Node-RED's own Node class: how it keeps input listeners is what the helper must get right.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const RedNode = require("@node-red/runtime/lib/nodes/Node.js") as new (config: { id: string; type: string }) => Node;

describe("benchmark input listeners on a Node-RED node", () => {
  it("stop hearing msgs once detached, so each round counts only its own", () => {
    const node = new RedNode({ id: "sink", type: "junction" });
    const heard: number[] = [];
    const detachFirst = onInput<NodeMessage & { payload: number }>(node, (msg) => heard.push(msg.payload));
    node.receive({ payload: 1 } as NodeMessage);
    detachFirst();
    const detachSecond = onInput<NodeMessage & { payload: number }>(node, (msg) => heard.push(100 + msg.payload));
    node.receive({ payload: 2 } as NodeMessage);
    detachSecond();
    node.receive({ payload: 3 } as NodeMessage);
    should(heard).eql([1, 102]);
  });
});
