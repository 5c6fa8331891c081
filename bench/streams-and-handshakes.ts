import { once } from "node:events";
import http2 from "node:http2";
import tls from "node:tls";
import { Device, Identity } from "../lib";
import { byteSource } from "../test/helpers/devices";
import { until } from "./embedded-node-red";
import { median } from "./stats";

async function pair(): Promise<{ a: Device; b: Device }> {
  const aIdentity = Identity.generate();
  const b = new Device({ identity: Identity.generate(), peers: [{ id: aIdentity.deviceId, name: "a" }] });
  const port = await b.start();
  const a = new Device({ identity: aIdentity, peers: [{ id: b.id, name: "b", address: `127.0.0.1:${port}` }] });
  return { a, b };
}

/** A TLS 1.3 server and a client with certificates, the same keys and cipher suite as the wire, nothing on top. */
export async function rawTlsServer(onSocket: (socket: tls.TLSSocket) => void): Promise<{ port: number; client: Identity; close(): Promise<void> }> {
  const server = Identity.generate();
  const client = Identity.generate();
  const listener = tls.createServer(
    { key: server.privateKeyPem, cert: server.certificatePem, minVersion: "TLSv1.3", requestCert: true, rejectUnauthorized: false },
    onSocket,
  );
  listener.listen(0, "127.0.0.1");
  await once(listener, "listening");
  return {
    port: (listener.address() as { port: number }).port,
    client,
    close: () => new Promise((resolve) => listener.close(() => resolve())),
  };
}

export function rawConnect(port: number, client: Identity, ticket?: Buffer): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ port, host: "127.0.0.1", secureContext: client.tlsContext(), rejectUnauthorized: false, session: ticket }, () => resolve(socket));
    socket.once("error", reject);
  });
}

/** MB/s of one stream over the wire vs over a bare TLS socket pair. */
export async function streamThroughput(bytes: number): Promise<{ ours: number; raw: number }> {
  const { a, b } = await pair();
  let ours = 0;
  try {
    b.onStream("bulk", async (stream) => {
      for await (const _ of stream.body) void _;
    });
    await a.sendStream("b", "bulk", byteSource(8 * 1024 * 1024));
    const started = performance.now();
    await a.sendStream("b", "bulk", byteSource(bytes));
    ours = bytes / 1e6 / ((performance.now() - started) / 1000);
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
  let received = 0;
  let finished!: () => void;
  const done = new Promise<void>((resolve) => (finished = resolve));
  const server = await rawTlsServer((socket) => {
    socket.on("data", (chunk: Buffer) => {
      received += chunk.length;
      if (received >= bytes) finished();
    });
    socket.on("error", () => undefined);
  });
  const socket = await rawConnect(server.port, server.client);
  const started = performance.now();
  byteSource(bytes).pipe(socket);
  await done;
  const raw = bytes / 1e6 / ((performance.now() - started) / 1000);
  socket.destroy();
  await server.close();
  return { ours, raw };
}

/**
 * Milliseconds from send() to the ack for a peer not yet connected, vs a bare mutual-TLS handshake, and vs
 * the floor of any HTTP/2 protocol: one small POST and its answer on a new HTTP/2 connection over the same
 * mutual TLS, nothing checked and nothing on top.
 */
export async function firstMessage(runs: number): Promise<{ ours: number; raw: number; http2: number }> {
  const target = new Device({ identity: Identity.generate(), peers: [] });
  target.authorize = () => true;
  const port = await target.start();
  target.onMessage("hello", () => undefined);
  const ours: number[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const sender = new Device({ identity: Identity.generate(), peers: [{ id: target.id, name: "t", address: `127.0.0.1:${port}` }] });
      const started = performance.now();
      await sender.send("t", "hello", i);
      ours.push(performance.now() - started);
      await sender.stop();
    }
  } finally {
    await target.stop();
  }
  const raw: number[] = [];
  const server = await rawTlsServer((socket) => socket.on("error", () => undefined));
  for (let i = 0; i < runs; i++) {
    const client = Identity.generate();
    // Like a device's, the client's key is loaded into its TLS context before the clock starts.
    client.tlsContext();
    const started = performance.now();
    const socket = await rawConnect(server.port, client);
    raw.push(performance.now() - started);
    socket.destroy();
  }
  await server.close();
  return { ours: median(ours), raw: median(raw), http2: await firstHttp2Request(runs) };
}

/**
 * Milliseconds from send() to the ack for a known peer whose connection was closed since (two reconnects
 * of three resume the TLS session: a full handshake brings two tickets, each offered once), vs a bare
 * mutual-TLS handshake, full and resumed; the three alternate run by run.
 */
export async function knownPeerMessage(runs: number): Promise<{ ours: number; rawFull: number; rawResumed: number }> {
  const target = new Device({ identity: Identity.generate(), peers: [] });
  target.authorize = () => true;
  const port = await target.start();
  target.onMessage("hello", () => undefined);
  const sender = new Device({ identity: Identity.generate(), peers: [{ id: target.id, name: "t", address: `127.0.0.1:${port}` }], idleConnectionMs: 20 });
  const server = await rawTlsServer((socket) => socket.on("error", () => undefined));
  const ours: number[] = [];
  const rawFull: number[] = [];
  const rawResumed: number[] = [];
  try {
    await sender.send("t", "hello", -1); // the full handshake that proves the peer (and brings its ticket)
    // The listener's tickets follow the client's end of the handshake, in a later read.
    const first = await rawConnect(server.port, server.client);
    const [ticket] = (await once(first, "session")) as [Buffer];
    first.destroy();
    for (let i = 0; i < runs; i++) {
      await until(() => sender.connections.out === 0, "the sender's idle connection to close", 5_000);
      let started = performance.now();
      await sender.send("t", "hello", i);
      ours.push(performance.now() - started);
      started = performance.now();
      const full = await rawConnect(server.port, server.client);
      rawFull.push(performance.now() - started);
      full.destroy();
      started = performance.now();
      const resumed = await rawConnect(server.port, server.client, ticket);
      rawResumed.push(performance.now() - started);
      if (!resumed.isSessionReused()) throw new Error("the bare TLS baseline did not resume its session");
      resumed.destroy();
    }
  } finally {
    await sender.stop();
    await target.stop();
    await server.close();
  }
  return { ours: median(ours), rawFull: median(rawFull), rawResumed: median(rawResumed) };
}

/** A new HTTP/2 connection over mutual TLS 1.3 (same keys), one POST and its answer read to the end. */
async function firstHttp2Request(runs: number): Promise<number> {
  const identity = Identity.generate();
  const server = http2.createSecureServer({ key: identity.privateKeyPem, cert: identity.certificatePem, minVersion: "TLSv1.3", requestCert: true, rejectUnauthorized: false });
  server.on("stream", (stream) => {
    stream.on("error", () => undefined);
    stream.resume();
    stream.on("end", () => {
      stream.respond({ ":status": 200, "content-type": "application/json" });
      stream.end('{"ok":true}');
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as { port: number }).port;
  const times: number[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const secureContext = Identity.generate().tlsContext();
      const started = performance.now();
      const session = http2.connect(`https://127.0.0.1:${port}`, { secureContext, rejectUnauthorized: false });
      session.on("error", () => undefined);
      const request = session.request({ ":method": "POST", ":path": "/msg/hello", "content-type": "application/json" });
      request.end(JSON.stringify(i));
      request.resume();
      await once(request, "end");
      times.push(performance.now() - started);
      session.close();
    }
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
  return median(times);
}
