import { rawConnect, rawTlsServer } from "./streams-and-handshakes";

export interface TlsOneWay {
  /** Milliseconds from a write at one end to its arrival at the other, one message at a time, `count` of them. */
  measure(count: number): Promise<number[]>;
  /** Messages the far end has received and parsed. */
  readonly received: number;
  close(): Promise<void>;
}

/**
 * A bare mutual-TLS socket pair in this process, the same keys and TLS 1.3 as the wire, nothing on top:
 * the least any TLS path between two ends in one process takes. The message is the bench's probe, as
 * JSON, parsed on arrival; one at a time, each sent when the one before it arrived.
 */
export async function tlsOneWay(): Promise<TlsOneWay> {
  let arrived: (() => void) | undefined;
  let received = 0;
  const server = await rawTlsServer((socket) => {
    socket.on("data", (chunk: Buffer) => {
      JSON.parse(chunk.toString());
      received += 1;
      arrived?.();
    });
    socket.on("error", () => undefined);
  });
  const socket = await rawConnect(server.port, server.client);
  socket.setNoDelay(true);
  return {
    async measure(count) {
      const times: number[] = [];
      for (let seq = 0; seq < count; seq++) {
        const started = performance.now();
        await new Promise<void>((resolve) => {
          arrived = resolve;
          socket.write(JSON.stringify({ topic: "bench/latency", payload: { t: started, seq } }));
        });
        times.push(performance.now() - started);
      }
      return times;
    },
    get received() {
      return received;
    },
    async close() {
      socket.destroy();
      await server.close();
    },
  };
}
