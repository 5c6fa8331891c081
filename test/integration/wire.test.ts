import type { Http2Session } from "node:http2";
import should from "should";
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { Device, Identity, WireError, type ReceivedMessage } from "../../lib";
import { byteSource, devicePair, nextCall, stopAll } from "../helpers/devices";
import { closesWithin, rawRequest, rawSession } from "../helpers/raw-client";
import { tamperedCertificate } from "../unit/identity.test";

describe("wire: messages over mutual TLS on 127.0.0.1", () => {
  let a: Device | undefined;
  let b: Device | undefined;
  const extra: Device[] = [];
  afterEach(async () => {
    await stopAll(a, b, ...extra.splice(0));
    a = b = undefined;
  });

  it("delivers a message with its type and the sender's verified id, then acks", async () => {
    ({ a, b } = await devicePair());
    const got = nextCall<ReceivedMessage>();
    b.onMessage("factory/+/temperature", got.callback);
    const ack = await a.send("b", "factory/press-7/temperature", { celsius: 81.5 });
    const message = await got.value;
    should(message.payload).eql({ celsius: 81.5 });
    should(message.topic).equal("factory/press-7/temperature");
    should(message.from).eql({ id: a.id, name: "a" });
    should(ack).match({ topic: "factory/press-7/temperature", receivers: 1, bytes: 16 });
  });

  it("acks only after every matching receiver took the message", async () => {
    ({ a, b } = await devicePair());
    const seen: string[] = [];
    b.onMessage("t/#", () => void seen.push("wide"));
    b.onMessage("t/x", async () => {
      await new Promise((resolve) => setImmediate(resolve));
      seen.push("slow");
    });
    const ack = await a.send("b", "t/x", "hi");
    should(ack.receivers).equal(2);
    should(seen.sort()).eql(["slow", "wide"]);
  });

  it("reuses one connection per peer pair for concurrent messages", async () => {
    ({ a, b } = await devicePair());
    let count = 0;
    b.onMessage("n", () => void count++);
    await Promise.all(Array.from({ length: 50 }, (_, i) => a!.send("b", "n", i)));
    should(count).equal(50);
    should((a as unknown as { pool: { connectionCount: number } }).pool.connectionCount).equal(1);
    should((b as unknown as { server: { connectionCount: number } }).server.connectionCount).equal(1);
  });

  it("delivers a message id once even when it is sent twice (a retry)", async () => {
    ({ a, b } = await devicePair());
    let count = 0;
    b.onMessage("once", () => void count++);
    const first = await a.send("b", "once", 1, { id: "retry-me" });
    const second = await a.send("b", "once", 1, { id: "retry-me" });
    should(count).equal(1);
    should(first.duplicate).be.undefined();
    should(second.duplicate).be.true();
  });

  it("refuses a device whose key is not known, before any receiver sees it", async () => {
    ({ a, b } = await devicePair({ bPeers: [] }));
    let reached = false;
    b.onMessage("#", () => void (reached = true));
    const refused = nextCall<{ peerId?: string; reason: string }>();
    b.on("refused", refused.callback);
    await should(a.send("b", "door/unlock", true)).be.rejectedWith({ name: "WireError", code: "REFUSED", message: new RegExp(a.id) });
    should((await refused.value).peerId).equal(a.id);
    should(reached).be.false();
  });

  it("refuses expired and altered certificates at the connection, saying why", async () => {
    ({ a, b } = await devicePair());
    const year = 365 * 86_400_000;
    const expired = Identity.generate({ notBefore: new Date(Date.now() - 2 * year), notAfter: new Date(Date.now() - year) });
    const stale = new Device({ identity: expired, peers: [{ id: b.id, name: "b", address: `127.0.0.1:${b.port}` }] });
    extra.push(stale);
    await should(stale.send("b", "x", 1)).be.rejectedWith({ name: "WireError", code: "REFUSED", message: /expired/ });

    const genuine = Identity.generate({ name: "sensor-A" });
    const altered = tamperedCertificate(genuine.certificatePem, "sensor-A", "sensor-B");
    const session = await rawSession(b.port!, { key: genuine.privateKeyPem, cert: altered.toString() });
    should(await closesWithin(session, 2000)).be.true();
    session.destroy();
  });

  it("refuses a client that presents no certificate", async () => {
    ({ a, b } = await devicePair());
    const session = await rawSession(b.port!, {});
    should(await closesWithin(session, 2000)).be.true();
    session.destroy();
  });

  it("refuses to talk to a listener whose key is not the expected device id", async () => {
    ({ a, b } = await devicePair());
    const impostor = Identity.generate().deviceId;
    const confused = new Device({ identity: Identity.generate(), peers: [{ id: impostor, name: "x", address: `127.0.0.1:${b.port}` }] });
    extra.push(confused);
    await should(confused.send("x", "t", 1)).be.rejectedWith({ name: "WireError", code: "IDENTITY_MISMATCH", message: new RegExp(`is ${b.id}, not ${impostor}`) });
  });

  it("reports unknown peers, peers without address, no receiver and unreachable peers with distinct codes", async () => {
    ({ a, b } = await devicePair());
    await should(a.send("nobody", "t", 1)).be.rejectedWith({ name: "WireError", code: "UNKNOWN_PEER" });
    await should(a.send("b", "nothing/listens", 1)).be.rejectedWith({ name: "WireError", code: "NO_RECEIVER", status: 404 });
    const port = b.port!;
    await b.stop();
    await should(a.send("b", "t", 1)).be.rejectedWith({ name: "WireError", code: "UNREACHABLE", message: new RegExp(`127.0.0.1:${port}`) });
    const lonely = new Device({ identity: Identity.generate(), peers: [{ id: b.id, name: "b" }] });
    extra.push(lonely);
    await should(lonely.send("b", "t", 1)).be.rejectedWith({ name: "WireError", code: "UNREACHABLE", message: /no configured address/ });
  });

  it("answers an oversized message with 413 and keeps serving", async () => {
    ({ a, b } = await devicePair({ maxMessageBytes: 1024 }));
    let count = 0;
    b.onMessage("big", () => void count++);
    await should(a.send("b", "big", Buffer.alloc(4096))).be.rejectedWith({ name: "WireError", code: "TOO_LARGE", status: 413 });
    await should(a.send("b", "big", Buffer.alloc(1024))).be.fulfilled();
    should(count).equal(1);
  });

  it("answers malformed requests with a 4xx and a reason, and keeps serving", async () => {
    ({ a, b } = await devicePair());
    const aIdentity = (a as unknown as { identity: Identity }).identity;
    let count = 0;
    b.onMessage("#", () => void count++);
    const session = await rawSession(b.port!, { key: aIdentity.privateKeyPem, cert: aIdentity.certificatePem });
    const post = (path: string, headers: Record<string, string>, body?: string) =>
      rawRequest(session, { ":method": "POST", ":path": path, "x-peer-mesh-id": "raw-1", ...headers }, body);
    const badJson = await post("/msg/t", { "content-type": "application/json" }, "{nope");
    should(badJson.status).equal(400);
    should(JSON.parse(badJson.body)).match({ error: "BAD_REQUEST", reason: /JSON/ });
    should((await post("/msg/t", { "content-type": "image/png" }, "x")).status).equal(400);
    should((await post("/msg/a%2", { "content-type": "text/plain" }, "x")).status).equal(400);
    should((await post("/msg/a/%2B", { "content-type": "text/plain" }, "x")).status).equal(400);
    should((await post("/elsewhere", { "content-type": "text/plain" }, "x")).status).equal(404);
    should((await rawRequest(session, { ":method": "GET", ":path": "/msg/t", "x-peer-mesh-id": "g" })).status).equal(405);
    should((await rawRequest(session, { ":method": "POST", ":path": "/msg/t", "content-type": "text/plain" }, "x")).status).equal(400);
    should(count).equal(0);
    session.destroy();
    await a.send("b", "still/serving", "ok");
    should(count).equal(1);
  });

  it("reconnects after the peer restarts on the same port", async () => {
    ({ a, b } = await devicePair());
    b.onMessage("t", () => undefined);
    await a.send("b", "t", 1);
    const identity = b.identity;
    const port = b.port!;
    await b.stop();
    b = new Device({ identity, port, peers: [{ id: a.id, name: "a" }] });
    await b.start();
    let got = false;
    b.onMessage("t", () => void (got = true));
    await a.send("b", "t", 2);
    should(got).be.true();
  });

  it("frees the port when stopped", async () => {
    ({ a, b } = await devicePair());
    const port = b.port!;
    await b.stop();
    b = new Device({ identity: Identity.generate(), port });
    should(await b.start()).equal(port);
  });
});

describe("wire: streams", () => {
  let a: Device | undefined;
  let b: Device | undefined;
  afterEach(async () => {
    await stopAll(a, b);
    a = b = undefined;
  });

  it("opens each connection's own window to 2 MiB at both ends for known peers (at HTTP/2's 64 KiB a stream moved at half a bare socket's rate), and leaves a stranger at 64 KiB", async () => {
    const aIdentity = Identity.generate();
    b = new Device({ identity: Identity.generate(), peers: [{ id: aIdentity.deviceId, name: "a" }] });
    const port = await b.start();
    a = new Device({ identity: aIdentity, peers: [{ id: b.id, name: "b", address: `127.0.0.1:${port}` }] });
    await a.start();
    b.onMessage("hi", () => undefined);
    await a.send("b", "hi", 1);
    // The dialler's window, as the listener sees it: what the listener may send before a WINDOW_UPDATE.
    const listenerSides = [...(b as unknown as { server: { sessions: Set<Http2Session> } }).server.sessions];
    should(listenerSides).have.length(1);
    should(listenerSides[0].state.remoteWindowSize).be.aboveOrEqual(2 * 1024 * 1024 - 64 * 1024);
    // The listener's window, as a raw client with the known key and one with a stranger's key see it.
    const windowFor = async (identity: Identity): Promise<number> => {
      const session = await rawSession(port, { key: identity.privateKeyPem, cert: identity.certificatePem });
      try {
        await rawRequest(session, { ":method": "GET", ":path": "/" }); // the listener's WINDOW_UPDATE has come by its answer
        return session.state.remoteWindowSize ?? 0;
      } finally {
        session.close();
      }
    };
    should(await windowFor(aIdentity)).be.aboveOrEqual(2 * 1024 * 1024 - 64 * 1024);
    should(await windowFor(Identity.generate())).be.belowOrEqual(64 * 1024);
  });

  it("carries 100 MB with backpressure, in order and intact, without buffering it", async function () {
    ({ a, b } = await devicePair());
    const total = 100 * 1024 * 1024;
    const sent = createHash("sha256");
    const received = createHash("sha256");
    let bytes = 0;
    let peakGrowth = 0;
    const baseline = process.memoryUsage().rss;
    b.onStream("bulk", async (stream) => {
      for await (const chunk of stream.body) {
        received.update(chunk as Buffer);
        bytes += (chunk as Buffer).length;
        peakGrowth = Math.max(peakGrowth, process.memoryUsage().rss - baseline);
      }
    });
    const pattern = (i: number) => (i * 7) & 0xff;
    for await (const chunk of byteSource(total, 64 * 1024, pattern)) sent.update(chunk as Buffer);
    const ack = await a.sendStream("b", "bulk", byteSource(total, 64 * 1024, pattern));
    should(bytes).equal(total);
    should(ack.bytes).equal(total);
    should(received.digest("hex")).equal(sent.digest("hex"));
    // Everything buffered would be ≥ 100 MB; flow control keeps it to the windows and socket buffers.
    should(peakGrowth).be.below(64 * 1024 * 1024);
  });

  it("carries 1 GiB while the process grows by less than 64 MB", async function () {
    ({ a, b } = await devicePair());
    const total = 1024 ** 3;
    let bytes = 0;
    let peakGrowth = 0;
    const baseline = process.memoryUsage().rss;
    b.onStream("huge", async (stream) => {
      for await (const chunk of stream.body) {
        bytes += (chunk as Buffer).length;
        peakGrowth = Math.max(peakGrowth, process.memoryUsage().rss - baseline);
      }
    });
    const ack = await a.sendStream("b", "huge", byteSource(total));
    should(ack.bytes).equal(total);
    should(bytes).equal(total);
    should(peakGrowth).be.below(64 * 1024 * 1024);
  });

  it("copies a stream to every matching receiver", async () => {
    ({ a, b } = await devicePair());
    const totals: number[] = [];
    const count = (stream: { body: Readable }) => (async () => {
      let n = 0;
      for await (const chunk of stream.body) n += (chunk as Buffer).length;
      totals.push(n);
    })();
    b.onStream("s/#", count);
    b.onStream("s/1", count);
    const ack = await a.sendStream("b", "s/1", byteSource(1_000_000));
    should(ack.receivers).equal(2);
    should(totals).eql([1_000_000, 1_000_000]);
  });

  it("hands a stream sent again under the same id (its ack lost) to the flow once, a repeat sent meanwhile too, and one that failed the first time again", async () => {
    ({ a, b } = await devicePair());
    const whole: string[] = [];
    let failNext = false;
    b.onStream("camera/#", async (stream) => {
      let bytes = 0;
      for await (const chunk of stream.body) bytes += (chunk as Buffer).length;
      if (failNext) {
        failNext = false;
        throw new WireError("REMOTE_ERROR", "the flow failed this one");
      }
      whole.push(`${stream.id}:${bytes}`);
    });
    const first = await a.sendStream("b", "camera/1", byteSource(300_000), { id: "frame-1" });
    should(first).match({ receivers: 1, bytes: 300_000 });
    should(first.duplicate).be.undefined();
    // The sender did not get that ack (say the link went down) and sends it again: drained, acked as a repeat.
    should(await a.sendStream("b", "camera/1", byteSource(300_000), { id: "frame-1" })).match({ id: "frame-1", receivers: 0, bytes: 300_000, duplicate: true });
    // Two copies at once: the second waits for the first, then is a repeat.
    const [x, y] = await Promise.all(["frame-2", "frame-2"].map((id) => a!.sendStream("b", "camera/1", byteSource(2_000_000), { id })));
    should([x.duplicate, y.duplicate].filter(Boolean)).have.length(1);
    // A stream the flow failed is no repeat: sent again, the flow gets it.
    failNext = true;
    await should(a.sendStream("b", "camera/1", byteSource(1_000), { id: "frame-3" })).be.rejectedWith({ message: /the flow failed this one/ });
    should(await a.sendStream("b", "camera/1", byteSource(1_000), { id: "frame-3" })).match({ receivers: 1, bytes: 1_000 });
    should(whole).eql(["frame-1:300000", "frame-2:2000000", "frame-3:1000"]);
  });

  it("fails the sender when the receiver fails mid-stream, with the receiver's reason", async () => {
    ({ a, b } = await devicePair());
    b.onStream("fragile", async (stream) => {
      let n = 0;
      for await (const chunk of stream.body) {
        n += (chunk as Buffer).length;
        if (n > 1_000_000) throw new WireError("TOO_LARGE", "receiver gives up after 1 MB");
      }
    });
    await should(a.sendStream("b", "fragile", byteSource(10_000_000))).be.rejectedWith({ name: "WireError", message: /receiver gives up/ });
  });

  it("tells the receiver when the source breaks off mid-stream", async () => {
    ({ a, b } = await devicePair());
    const outcome = nextCall<string>();
    b.onStream("broken", async (stream) => {
      try {
        for await (const _ of stream.body) void _;
        outcome.callback("ended");
      } catch (err) {
        outcome.callback(`failed: ${(err as Error).message}`);
        throw err;
      }
    });
    let n = 0;
    const source = new Readable({
      read() {
        if (n++ < 20) this.push(Buffer.alloc(64 * 1024));
        else this.destroy(new Error("sensor unplugged"));
      },
    });
    await should(a.sendStream("b", "broken", source)).be.rejectedWith({ name: "WireError", code: "STREAM_ABORTED", message: /sensor unplugged/ });
    should(await outcome.value).match(/^failed/);
  });

  it("refuses a stream from an unknown key and one nobody receives", async () => {
    ({ a, b } = await devicePair({ bPeers: [] }));
    b.onStream("#", async () => undefined);
    await should(a.sendStream("b", "s", byteSource(10_000_000))).be.rejectedWith({ name: "WireError", code: "REFUSED" });
    await stopAll(a, b);
    ({ a, b } = await devicePair());
    await should(a.sendStream("b", "s", byteSource(10_000_000))).be.rejectedWith({ name: "WireError", code: "NO_RECEIVER" });
  });
});

describe("wire: lifecycle", () => {
  it("a stop that overtakes a start leaves nothing listening", async () => {
    const device = new Device({ identity: Identity.generate() });
    const starting = device.start();
    await device.stop();
    const port = await starting;
    const net = await import("node:net");
    const error = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      const socket = net.connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(undefined);
      });
      socket.once("error", resolve);
    });
    should(error?.code).equal("ECONNREFUSED");
  });
});
