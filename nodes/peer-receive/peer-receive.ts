import type { Node, NodeAPI, NodeDef, NodeMessage } from "node-red";
import { DEFAULT_REPLY_WITHIN_MS, Rechunker, WireError, type ReceivedStream } from "../../lib";
import { deliveryReceipts } from "../shared/delivery-receipts";
import { holdReply } from "../shared/pending-replies";
import { countHandedOverAgain, holdForRedelivery, takeRedeliveries } from "../shared/redelivery";
import { useIdentity } from "../shared/identity-node";
import { ThrottledStatus } from "../shared/throttled-status";

interface PeerReceiveDef extends NodeDef {
  identity?: string;
  topic?: string;
  streamOutput?: "chunks" | "buffer";
  chunkKb?: number | string;
  maxBufferMb?: number | string;
}

const DEFAULT_CHUNK_KB = 64;
const DEFAULT_MAX_BUFFER_MB = 64;
/** A msg a deploy dropped is handed over again this often, this many times, before it waits for the next peer receive. */
const RETRY_DELIVERY_MS = 200;
const MAX_DELIVERY_ATTEMPTS = 10;

export = (RED: NodeAPI): void => {
  RED.nodes.registerType("peer-receive", function (this: Node, def: PeerReceiveDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const { ready } = useIdentity(RED, node, def.identity);
    const pattern = def.topic || "#";
    const chunkBytes = Math.max(1, Number(def.chunkKb) || DEFAULT_CHUNK_KB) * 1024;
    const maxBufferBytes = Math.max(1, Number(def.maxBufferMb) || DEFAULT_MAX_BUFFER_MB) * 1024 * 1024;
    const unsubscribe: Array<() => void> = [];
    const status = new ThrottledStatus(node);
    // Whether the nodes wired after this one took each msg (a deploy can stop them in between).
    const receipts = deliveryReceipts(RED, node);
    let received = 0;
    let port = 0;

    const counted = (): void => {
      received += 1;
      status.update(() => ({ fill: "green", shape: "dot", text: RED._("peer-mesh.status.received", { count: received, port }) }));
    };

    /** One msg per chunk of about chunkBytes, with msg.parts as the split node makes them (count on the last). */
    const emitChunks = async (stream: ReceivedStream): Promise<void> => {
      const rechunker = new Rechunker(chunkBytes);
      let index = 0;
      // One piece is held back so that the last msg, which carries parts.count, can be told apart.
      let held: Buffer | undefined;
      const handedOver: Array<Promise<void>> = [];
      const emit = (payload: Buffer, last: boolean): void => {
        const parts = { id: stream.id, index, type: "buffer", len: chunkBytes, ...(last ? { count: index + 1 } : {}) };
        index += 1;
        const receipt = receipts.send({ topic: stream.topic, payload, peer: stream.from, parts });
        // Settled here too, so that a refusal before the end is not reported as unhandled.
        receipt.catch(() => undefined);
        handedOver.push(receipt);
      };
      for await (const chunk of stream.body as AsyncIterable<Buffer>) {
        for (const piece of rechunker.push(chunk)) {
          if (held) emit(held, false);
          held = piece;
        }
        // Let the flow take what was sent before reading more: the sender waits on HTTP/2 flow control.
        await new Promise((resolve) => setImmediate(resolve));
      }
      const tail = rechunker.flush();
      if (tail.length > 0) {
        if (held) emit(held, false);
        held = tail;
      }
      emit(held ?? Buffer.alloc(0), true);
      await Promise.all(handedOver);
      counted();
    };

    const emitBuffer = async (stream: ReceivedStream): Promise<void> => {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of stream.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > maxBufferBytes) {
          throw new WireError("TOO_LARGE", RED._("peer-receive.errors.too-large", { max: maxBufferBytes }));
        }
        chunks.push(chunk);
      }
      await receipts.send({ topic: stream.topic, payload: Buffer.concat(chunks, size), peer: stream.from });
      counted();
    };

    let identityId: string | undefined;
    let closed = false;
    const retries = new Map<NodeJS.Timeout, { msg: NodeMessage; topic: string }>();
    /**
     * Hands a msg to the flow; one that a deploy dropped between node.send and its delivery goes again
     * shortly (a "nodes" deploy restarts the next node under this one), or, once this node is stopped,
     * to the next peer receive of this identity that listens on its topic.
     */
    const deliver = (msg: NodeMessage, topic: string, attempt = 1, again = attempt > 1): void => {
      receipts.send(msg).then(() => {
        if (again) countHandedOverAgain();
        counted();
      }, () => {
        if (closed || attempt >= MAX_DELIVERY_ATTEMPTS) return hold(msg, topic);
        const timer = setTimeout(() => {
          retries.delete(timer);
          deliver(msg, topic, attempt + 1);
        }, RETRY_DELIVERY_MS);
        retries.set(timer, { msg, topic });
      });
    };
    const hold = (msg: NodeMessage, topic: string): void => {
      if (!identityId) return;
      const dropped = holdForRedelivery(identityId, topic, msg);
      if (dropped > 0) node.warn(RED._("peer-receive.warnings.redelivery-full", { count: dropped }));
    };

    ready.then(
      (device) => {
        identityId = device.id;
        port = device.port ?? 0;
        status.now({ fill: "green", shape: "dot", text: RED._("peer-mesh.status.listening", { port }) });
        unsubscribe.push(
          device.onMessage(pattern, async (message) => {
            if (message.reply) {
              // A request carries the handle a peer reply node answers it by (as http in's msg.res for http
              // response). Its sender waits for the reply anyway: it hears at once if a deploy dropped it.
              await receipts.send({ topic: message.topic, payload: message.payload, peer: message.from, messageId: message.id, _peerReply: holdReply(message.reply, message.replyWithinMs ?? DEFAULT_REPLY_WITHIN_MS) });
              counted();
              return;
            }
            // Acknowledged at once (waiting for Node-RED's delivery a turn later cost a quarter of the
            // message rate); one a deploy drops on its way in is handed over again, never lost.
            deliver({ topic: message.topic, payload: message.payload, peer: message.from, messageId: message.id }, message.topic);
          }),
          device.onStream(pattern, (stream) =>
            (def.streamOutput === "buffer" ? emitBuffer(stream) : emitChunks(stream)).catch((err: Error) => {
              const code = err instanceof WireError ? err.code : "STREAM_ABORTED";
              const report = new WireError(code, RED._("peer-receive.errors.stream", { topic: stream.topic, message: err.message }));
              node.error(report, { topic: stream.topic, peer: stream.from });
              throw err;
            }),
          ),
        );
        for (const msg of takeRedeliveries(device.id, pattern)) deliver(msg, String(msg.topic), 1, true);
      },
      () => undefined, // shown in the status by useIdentity
    );

    node.on("close", (_removed: boolean, done: () => void) => {
      status.stop();
      closed = true;
      for (const stop of unsubscribe.splice(0)) stop();
      for (const [timer, { msg, topic }] of retries) {
        clearTimeout(timer);
        hold(msg, topic);
      }
      retries.clear();
      receipts.release();
      done();
    });
  });
};
