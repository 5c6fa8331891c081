import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from "node-red";
import { isDeviceId, VERBS, type Verb } from "../../lib";
import { useIdentity } from "../shared/identity-node";
import { ThrottledStatus } from "../shared/throttled-status";

interface AclCheckDef extends NodeDef {
  identity?: string;
  /** Where the device id is in the msg; "peer.id" by default, as peer-receive sets it. */
  property?: string;
  /** "group": membership of one group; "rule": the identity's rules for a verb on a resource. */
  mode?: "group" | "rule";
  /** A group name (owned by this identity) or "<owner id>/<name>". */
  group?: string;
  verb?: string;
  /** A resource such as "msg/door/unlock"; empty: "msg/" + msg.topic. */
  resource?: string;
}

type Decision = { allowed: boolean; reason?: string };

export = (RED: NodeAPI): void => {
  RED.nodes.registerType("acl-check", function (this: Node, def: AclCheckDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const { ready } = useIdentity(RED, node, def.identity);
    const property = def.property || "peer.id";
    const mode = def.mode === "rule" ? "rule" : "group";
    const verb = (VERBS.includes(def.verb as Verb) ? def.verb : "send") as Verb;
    const status = new ThrottledStatus(node);
    let allowedCount = 0;
    let deniedCount = 0;
    ready.then(() => node.status({ fill: "grey", shape: "dot", text: RED._("acl-check.status.ready") }), () => undefined);

    node.on("input", (msg: NodeMessageInFlow, send: (msgs: Array<NodeMessageInFlow | null>) => void, done: (err?: Error) => void) => {
      ready
        .then(async (device) => {
          let peerId: unknown;
          try {
            peerId = RED.util.getMessageProperty(msg, property);
          } catch {
            peerId = undefined; // a missing parent object ("msg.peer" absent) is no device id
          }
          let decision: Decision;
          if (!isDeviceId(peerId)) {
            decision = { allowed: false, reason: RED._("acl-check.errors.no-id", { property }) };
          } else if (mode === "group") {
            const principal = `group:${def.group ?? ""}`;
            decision = device.acl.inGroup(principal, peerId) ? { allowed: true } : { allowed: false, reason: RED._("acl-check.errors.not-member", { group: def.group ?? "" }) };
          } else {
            const resource = def.resource || `msg/${String(msg.topic ?? "")}`;
            // What the wire would answer this peer: the device's authorizer, which an embedding host may have replaced.
            decision = (await device.allows(peerId, verb, resource)) ? { allowed: true } : { allowed: false, reason: RED._("acl-check.errors.refused", { verb, resource }) };
          }
          const out = { ...msg, acl: decision };
          if (decision.allowed) allowedCount++;
          else deniedCount++;
          status.update(() => ({ fill: "green", shape: "dot", text: RED._("acl-check.status.counts", { allowed: allowedCount, denied: deniedCount }) }));
          send(decision.allowed ? [out, null] : [null, out]);
        })
        .then(() => done(), (err: Error) => done(err));
    });
    node.on("close", (_removed: boolean, done: () => void) => {
      status.stop();
      done();
    });
  });
};
