import { once } from "node:events";
import tls from "node:tls";
import { Device, Identity } from "../lib";
import { median } from "./stats";

/** A payload like a sensor reading, the same on both paths. */
const payload = (seq: number): { celsius: number; seq: number; at: number } => ({ celsius: 21.5, seq, at: Date.now() });

/** Keeps `window` calls of `sendOne` in flight until `count` have resolved; msg/s. */
async function inFlight(count: number, window: number, sendOne: (seq: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (next < count) await sendOne(next++);
  };
  await Promise.all(Array.from({ length: Math.min(window, count) }, worker));
  return count / ((performance.now() - started) / 1000);
}

/**
 * The floor a message channel of our own could reach: one mutual-TLS 1.3 socket (the same keys), frames
 * of a 4-byte length and JSON {id, topic, payload}, each answered by a framed ack {id}. Nothing else:
 * no ACL, no dedupe, no HTTP/2.
 */
async function bareTlsChannel(): Promise<{ send(seq: number): Promise<void>; close(): Promise<void> }> {
  const server = Identity.generate();
  const client = Identity.generate();
  const listener = tls.createServer({ key: server.privateKeyPem, cert: server.certificatePem, minVersion: "TLSv1.3", requestCert: true, rejectUnauthorized: false }, (socket) => {
    readFrames(socket, (frame) => {
      const { id } = JSON.parse(frame.toString("utf8")) as { id: number };
      socket.write(framed({ id }));
    });
  });
  listener.listen(0, "127.0.0.1");
  await once(listener, "listening");
  const port = (listener.address() as { port: number }).port;
  const socket = tls.connect({ port, host: "127.0.0.1", secureContext: client.tlsContext(), rejectUnauthorized: false });
  await once(socket, "secureConnect");
  socket.setNoDelay(true);
  const waiting = new Map<number, () => void>();
  readFrames(socket, (frame) => {
    const { id } = JSON.parse(frame.toString("utf8")) as { id: number };
    waiting.get(id)?.();
    waiting.delete(id);
  });
  return {
    send: (seq) =>
      new Promise<void>((resolve) => {
        waiting.set(seq, resolve);
        socket.write(framed({ id: seq, topic: "bench/rate", payload: payload(seq) }));
      }),
    close: async () => {
      socket.destroy();
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
}

function framed(value: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(value));
  const header = Buffer.alloc(4);
  header.writeUInt32BE(body.length);
  return Buffer.concat([header, body]);
}

function readFrames(socket: tls.TLSSocket, onFrame: (frame: Buffer) => void): void {
  let pending: Buffer = Buffer.alloc(0);
  socket.on("data", (chunk: Buffer) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0)) {
      const length = pending.readUInt32BE(0);
      onFrame(pending.subarray(4, 4 + length));
      pending = pending.subarray(4 + length);
    }
  });
}

/**
 * Messages per second at the library level (no Node-RED): `device.send` with acks, 32 in flight, vs the
 * bare framed TLS channel above, rounds alternating so that drift hits both; medians.
 */
export async function libraryMessages(options: { count: number; window: number; rounds: number }): Promise<{ ours: number; raw: number }> {
  const aIdentity = Identity.generate();
  const b = new Device({ identity: Identity.generate(), peers: [{ id: aIdentity.deviceId, name: "a" }] });
  const port = await b.start();
  const a = new Device({ identity: aIdentity, peers: [{ id: b.id, name: "b", address: `127.0.0.1:${port}` }] });
  b.onMessage("bench/#", () => undefined);
  const raw = await bareTlsChannel();
  try {
    const ours = (seq: number) => a.send("b", "bench/rate", payload(seq));
    await inFlight(2_000, options.window, ours);
    await inFlight(2_000, options.window, raw.send);
    const figures = { ours: [] as number[], raw: [] as number[] };
    for (let round = 0; round < options.rounds; round++) {
      figures.ours.push(await inFlight(options.count, options.window, ours));
      figures.raw.push(await inFlight(options.count, options.window, raw.send));
    }
    return { ours: median(figures.ours), raw: median(figures.raw) };
  } finally {
    await raw.close();
    await Promise.all([a.stop(), b.stop()]);
  }
}
