import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from "node-red";
import { Readable } from "node:stream";
import { MAX_REPLY_WAIT_MS, newMessageId, OutgoingSequences, WireError, type Ack, type Device } from "../../lib";
import { migrate, type Migration } from "../shared/migrations";
import { errorStatus, useIdentity } from "../shared/identity-node";
import { ThrottledStatus } from "../shared/throttled-status";

interface PeerSendDef extends NodeDef {
  identity?: string;
  peer?: string;
  topic?: string;
  timeout?: number | string;
  partsAsStream?: boolean;
  /** Wait for the receiving flow's reply (a peer reply node) and output it. */
  waitReply?: boolean;
  /** Seconds the receiving flow has to reply. */
  replyTimeout?: number | string;
}

const MIGRATIONS: ReadonlyArray<Migration<PeerSendDef>> = [
  { field: "waitReply", was: false, why: "0.2.0 added request/reply; a flow saved before sent plain messages and output the ack" },
  { field: "replyTimeout", was: 10, why: "0.2.0 added request/reply with a 10 s default wait" },
];

interface Parts {
  id: string;
  index: number;
  count?: number;
}

const SEQUENCE_IDLE_MS = 30_000;

function peerOf(msg: NodeMessageInFlow & { peer?: unknown }, configured: string | undefined): string {
  if (configured) return configured;
  const peer = msg.peer;
  if (typeof peer === "string" && peer) return peer;
  if (peer && typeof peer === "object" && typeof (peer as { id?: unknown }).id === "string") return (peer as { id: string }).id;
  throw new WireError("UNKNOWN_PEER", "no peer: set one in the node or pass msg.peer (device id or name)");
}

function partsOf(msg: NodeMessageInFlow): Parts | undefined {
  const parts = (msg as { parts?: Partial<Parts> }).parts;
  return parts && typeof parts.id === "string" && typeof parts.index === "number" ? (parts as Parts) : undefined;
}

function chunkOf(payload: unknown): Buffer {
  if (Buffer.isBuffer(payload)) return payload;
  if (typeof payload === "string") return Buffer.from(payload, "utf8");
  throw new WireError("BAD_REQUEST", "a stream part's msg.payload must be a Buffer or a string");
}

export = (RED: NodeAPI): void => {
  RED.nodes.registerType("peer-send", function (this: Node, saved: PeerSendDef) {
    RED.nodes.createNode(this, saved);
    const def = migrate(saved, MIGRATIONS);
    const node = this;
    const { ready } = useIdentity(RED, node, def.identity);
    const timeoutMs = Math.max(1, Number(def.timeout) || 10) * 1000;
    const replyWithinMs = Math.round(Math.min(MAX_REPLY_WAIT_MS / 1000, Math.max(0.001, Number(def.replyTimeout) || 10)) * 1000);
    const sequences = new OutgoingSequences<Ack>(SEQUENCE_IDLE_MS);
    const status = new ThrottledStatus(node);
    let delivered = 0;
    // Once the identity is up, messages go straight to it instead of waiting a turn on `ready`.
    let started: Device | undefined;
    ready.then(
      (device) => {
        started = device;
        status.now({ fill: "grey", shape: "ring", text: RED._("peer-mesh.status.idle") });
      },
      () => undefined,
    );
    // Node-RED builds a msg id, a metric and a hook call for every send, even from an output with no wire.
    const outputWired = (node as Node & { wires?: string[][] }).wires?.some((wire) => wire.length > 0) ?? true;

    node.on("input", (msg, send, done) => {
      const topic = def.topic || msg.topic;
      const handle = async (device: Device): Promise<void> => {
        const peer = peerOf(msg, def.peer);
        const parts = def.partsAsStream !== false ? partsOf(msg) : undefined;
        status.update(() => ({ fill: "yellow", shape: "ring", text: RED._("peer-mesh.status.sending", { peer: shortLabel(peer) }) }));
        let ack: Ack | undefined;
        if (def.waitReply) {
          if (msg.payload instanceof Readable || parts) throw new WireError("BAD_REQUEST", RED._("peer-send.errors.request-stream"));
          const answer = await device.request(peer, String(topic ?? ""), msg.payload, { timeoutMs, replyWithinMs, id: messageIdOf(msg) });
          delivered += 1;
          status.update(() => ({ fill: "green", shape: "dot", text: RED._("peer-send.status.replied", { count: delivered }) }));
          if (outputWired) send({ ...msg, payload: answer.reply, ack: answer.ack });
          done();
          return;
        }
        if (msg.payload instanceof Readable) ack = await device.sendStream(peer, String(topic ?? ""), msg.payload, { idleMs: timeoutMs });
        else if (parts) {
          const start = (body: Readable) => device.sendStream(peer, String(topic ?? ""), body, { idleMs: timeoutMs });
          ack = await sequences.push(parts.id, parts.index, chunkOf(msg.payload), parts.count, start);
        } else ack = await device.send(peer, String(topic ?? ""), msg.payload, { timeoutMs, id: messageIdOf(msg) });
        if (ack) {
          delivered += 1;
          status.update(() => ({ fill: "green", shape: "dot", text: RED._("peer-mesh.status.delivered", { count: delivered }) }));
          if (outputWired) send({ ...msg, payload: ack });
        }
        done();
      };
      (started ? handle(started) : ready.then(handle)).catch((err: Error) => {
        status.now(errorStatus(err));
        done(err);
      });
    });

    node.on("close", (_removed: boolean, done: () => void) => {
      status.stop();
      sequences.close(new Error("the node was closed"));
      done();
    });
  });
};

const MESSAGE_ID = /^[\x21-\x7e]{1,128}$/;

/**
 * The wire id of a message: msg.messageId, or a new one written there. A msg retried after a failure
 * (Catch → delay → this node) then carries the same id, and the receiver delivers it once.
 */
function messageIdOf(msg: NodeMessageInFlow & { messageId?: unknown }): string {
  if (msg.messageId === undefined) return (msg.messageId = newMessageId());
  if (typeof msg.messageId !== "string" || !MESSAGE_ID.test(msg.messageId)) throw new Error("msg.messageId must be 1 to 128 printable ASCII characters without spaces");
  return msg.messageId;
}

function shortLabel(peer: string): string {
  return peer.length > 20 ? peer.slice(0, 8) : peer;
}
