import type { Node, NodeAPI, NodeDef } from "node-red";
import { DEFAULT_REPLY_WITHIN_MS, Rechunker, WireError, type ReceivedStream } from "../../lib";
import { deliveryReceipts } from "../shared/delivery-receipts";
import { holdReply } from "../shared/pending-replies";
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
    // The sender's ack waits until the nodes wired after this one took the msg, not only node.send.
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

    ready.then(
      (device) => {
        port = device.port ?? 0;
        status.now({ fill: "green", shape: "dot", text: RED._("peer-mesh.status.listening", { port }) });
        unsubscribe.push(
          device.onMessage(pattern, async (message) => {
            // A request carries the handle a peer reply node answers it by (as http in's msg.res for http response).
            const reply = message.reply ? { _peerReply: holdReply(message.reply, message.replyWithinMs ?? DEFAULT_REPLY_WITHIN_MS) } : {};
            await receipts.send({ topic: message.topic, payload: message.payload, peer: message.from, messageId: message.id, ...reply });
            counted();
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
      },
      () => undefined, // shown in the status by useIdentity
    );

    node.on("close", (_removed: boolean, done: () => void) => {
      status.stop();
      for (const stop of unsubscribe.splice(0)) stop();
      receipts.release();
      done();
    });
  });
};
