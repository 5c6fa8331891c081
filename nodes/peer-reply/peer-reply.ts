import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from "node-red";
import { errorStatus } from "../shared/identity-node";
import { answerReply } from "../shared/pending-replies";
import { ThrottledStatus } from "../shared/throttled-status";

/**
 * Answers a request that a peer receive node output (a peer send with "wait for reply" on the other
 * device): msg.payload goes back to the sender, as an http response node answers an http in node.
 */
export = (RED: NodeAPI): void => {
  RED.nodes.registerType("peer-reply", function (this: Node, def: NodeDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const status = new ThrottledStatus(node);
    let replied = 0;

    node.on("input", (msg: NodeMessageInFlow & { _peerReply?: unknown }, _send: unknown, done: (err?: Error) => void) => {
      try {
        if (!answerReply(msg._peerReply, msg.payload)) {
          const reason = msg._peerReply === undefined ? "peer-reply.errors.no-handle" : "peer-reply.errors.gone";
          throw Object.assign(new Error(RED._(reason)), { code: "NO_REQUEST" });
        }
        replied += 1;
        status.update(() => ({ fill: "green", shape: "dot", text: RED._("peer-reply.status.replied", { count: replied }) }));
        done();
      } catch (err) {
        status.now(errorStatus(err));
        done(err as Error);
      }
    });

    node.on("close", (_removed: boolean, done: () => void) => {
      status.stop();
      done();
    });
  });
};
