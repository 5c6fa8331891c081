import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from "node-red";
import { Readable } from "node:stream";
import { SequenceStream, WireError, type Ack, type Device } from "../../lib";
import { errorStatus, useIdentity } from "../shared/identity-node";
import { ThrottledStatus } from "../shared/throttled-status";

interface PeerSendDef extends NodeDef {
  identity?: string;
  peer?: string;
  topic?: string;
  timeout?: number | string;
  partsAsStream?: boolean;
}

interface Parts {
  id: string;
  index: number;
  count?: number;
}

/** A msg.parts sequence being sent as one stream. */
interface Outgoing {
  sequence: SequenceStream;
  result: Promise<Ack>;
  idle: NodeJS.Timeout;
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
  RED.nodes.registerType("peer-send", function (this: Node, def: PeerSendDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const { ready } = useIdentity(RED, node, def.identity);
    const timeoutMs = Math.max(1, Number(def.timeout) || 10) * 1000;
    const outgoing = new Map<string, Outgoing>();
    const status = new ThrottledStatus(node);
    let delivered = 0;
    ready.then(() => status.now({ fill: "grey", shape: "ring", text: RED._("peer-mesh.status.idle") }), () => undefined);

    /** Feeds one part into its sequence's stream; the last part waits for the receiver's ack. */
    const sendPart = async (device: Device, msg: NodeMessageInFlow, parts: Parts, peer: string, topic: string): Promise<Ack | undefined> => {
      let entry = outgoing.get(parts.id);
      if (!entry) {
        const sequence = new SequenceStream();
        const result = device.sendStream(peer, topic, sequence.readable, { idleMs: timeoutMs });
        result.catch(() => undefined); // surfaced by the part that is waiting, or by the last one
        entry = { sequence, result, idle: setTimeout(() => undefined, 0) };
        outgoing.set(parts.id, entry);
        result.finally(() => {
          clearTimeout(outgoing.get(parts.id)?.idle);
          outgoing.delete(parts.id);
        });
      }
      const current = entry;
      clearTimeout(current.idle);
      current.idle = setTimeout(() => current.sequence.abort(new Error(`no part of sequence ${parts.id} for ${SEQUENCE_IDLE_MS / 1000} s`)), SEQUENCE_IDLE_MS);
      try {
        await Promise.race([current.sequence.push(parts.index, chunkOf(msg.payload), parts.count), current.result.then(() => undefined)]);
      } catch (err) {
        current.sequence.abort(err as Error);
        throw err;
      }
      return current.sequence.complete ? current.result : undefined;
    };

    node.on("input", (msg, send, done) => {
      const topic = def.topic || msg.topic;
      ready
        .then(async (device) => {
          const peer = peerOf(msg, def.peer);
          const parts = def.partsAsStream !== false ? partsOf(msg) : undefined;
          status.update(() => ({ fill: "yellow", shape: "ring", text: RED._("peer-mesh.status.sending", { peer: shortLabel(peer) }) }));
          let ack: Ack | undefined;
          if (msg.payload instanceof Readable) ack = await device.sendStream(peer, String(topic ?? ""), msg.payload, { idleMs: timeoutMs });
          else if (parts) ack = await sendPart(device, msg, parts, peer, String(topic ?? ""));
          else ack = await device.send(peer, String(topic ?? ""), msg.payload, { timeoutMs });
          if (ack) {
            delivered += 1;
            status.update(() => ({ fill: "green", shape: "dot", text: RED._("peer-mesh.status.delivered", { count: delivered }) }));
            send({ ...msg, payload: ack });
          }
          done();
        })
        .catch((err: Error) => {
          status.now(errorStatus(err));
          done(err);
        });
    });

    node.on("close", (_removed: boolean, done: () => void) => {
      status.stop();
      for (const entry of outgoing.values()) {
        clearTimeout(entry.idle);
        entry.sequence.abort(new Error("the node was closed"));
      }
      outgoing.clear();
      done();
    });
  });
};

function shortLabel(peer: string): string {
  return peer.length > 20 ? peer.slice(0, 8) : peer;
}
