import http2, { type Http2SecureServer, type ServerHttp2Stream } from "node:http2";
import { Readable } from "node:stream";
import should from "should";
import { Device } from "../../lib";
import { WireError } from "../../lib/protocol/errors";
import { encodeBatch } from "../../lib/wire/batch";
import { encodeFrame, FrameReader } from "../../lib/wire/channel";
import { decodeOutcomes, encodeItems } from "../../lib/wire/channel-codec";
import { devicePair, stopAll } from "../helpers/devices";
import { rawRequest, rawSession } from "../helpers/raw-client";

/** Every HTTP/2 stream the device's listener serves, with its path. */
function streamsServed(device: Device): Array<{ path: string; stream: ServerHttp2Stream }> {
  const served: Array<{ path: string; stream: ServerHttp2Stream }> = [];
  (device as unknown as { server: { server: Http2SecureServer } }).server.server.on("stream", (stream, headers) => void served.push({ path: String(headers[":path"]), stream }));
  return served;
}

/** Sends `count` messages from a to b with `window` in flight; the acks, in the order sent. */
async function sendMany(a: Device, count: number, window: number, topic = "t"): Promise<Array<{ receivers: number; duplicate?: boolean }>> {
  const acks: Array<{ receivers: number; duplicate?: boolean }> = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: window }, async () => {
      while (next < count) {
        const i = next++;
        acks[i] = await a.send("b", topic, i);
      }
    }),
  );
  return acks;
}

describe("wire: the message channel (one stream per peer, batches as frames)", () => {
  let a: Device | undefined;
  let b: Device | undefined;
  afterEach(async () => {
    await stopAll(a, b);
    a = b = undefined;
  });

  it("carries 1,000 messages with 32 in flight on one stream, each delivered once and in the order sent", async () => {
    ({ a, b } = await devicePair());
    const served = streamsServed(b);
    const delivered: number[] = [];
    b.onMessage("t", (message) => void delivered.push(message.payload as number));
    const acks = await sendMany(a, 1_000, 32);
    should(acks.every((ack) => ack.receivers === 1 && !ack.duplicate)).be.true();
    // In order: frames are handed to the flow in the order they were written (4 requests in parallel were not).
    should(delivered).eql(Array.from({ length: 1_000 }, (_, i) => i));
    // One channel; a request per message (or per batch behind four in flight) before.
    should(served.map((entry) => entry.path)).eql(["/channel"]);
  });

  it("sends the messages as requests to a peer without the channel (an earlier release answers 404)", async () => {
    ({ a, b } = await devicePair());
    // What a listener of the release before answers: no route.
    (b as unknown as { server: { serveChannel(): Promise<void> } }).server.serveChannel = () => Promise.reject(new WireError("NOT_FOUND", "no route for /channel"));
    const served = streamsServed(b);
    const delivered: number[] = [];
    b.onMessage("t", (message) => void delivered.push(message.payload as number));
    const acks = await sendMany(a, 200, 8);
    should(acks.every((ack) => ack.receivers === 1)).be.true();
    should(delivered.sort((x, y) => x - y)).eql(Array.from({ length: 200 }, (_, i) => i));
    should(served.filter((entry) => entry.path === "/channel")).have.length(1); // asked once, then requests
    should(served.length).be.above(20);
  });

  it("a channel the listener cuts off: the frames in flight go again on a new one, and each message is delivered once", async () => {
    ({ a, b } = await devicePair());
    const served = streamsServed(b);
    const delivered: number[] = [];
    b.onMessage("t", (message) => {
      delivered.push(message.payload as number);
      // Mid-way, twice: the listener resets its channel while frames are in flight both ways.
      if (delivered.length === 300 || delivered.length === 700) for (const entry of served) if (entry.path === "/channel" && !entry.stream.destroyed) entry.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    });
    const acks = await sendMany(a, 1_000, 32);
    should(acks).have.length(1_000);
    should(acks.filter((ack) => ack.receivers === 1 || ack.duplicate)).have.length(1_000);
    should(delivered.sort((x, y) => x - y)).eql(Array.from({ length: 1_000 }, (_, i) => i));
    should(served.filter((entry) => entry.path === "/channel").length).equal(3);
  });

  it("gives a cut channel's unanswered frames back to the peer's share once, however late their answers come", async () => {
    ({ a, b } = await devicePair());
    const served = streamsServed(b);
    const server = (b as unknown as { server: { pendingBodies: { bytes: number } } }).server;
    const held: Array<() => void> = [];
    b.onMessage("slow", () => new Promise<void>((resolve) => held.push(resolve)));
    const first = a.send("b", "slow", "x".repeat(1_000)).catch(() => undefined);
    while (held.length < 1) await new Promise((resolve) => setImmediate(resolve));
    // The listener cuts the channel while the frame's delivery is still held by the flow.
    for (const entry of served) if (entry.path === "/channel") entry.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    // The frame goes again on a new channel; that copy is the duplicate of one still being delivered, held too.
    while (served.filter((entry) => entry.path === "/channel").length < 2) await new Promise((resolve) => setImmediate(resolve));
    const second = a.send("b", "slow", "y".repeat(1_000)).catch(() => undefined);
    while (held.length < 2) await new Promise((resolve) => setImmediate(resolve));
    const before = server.pendingBodies.bytes;
    should(before).be.above(1_000); // the frames on the new channel
    held[0](); // the first, cut channel's answer settles now
    await new Promise((resolve) => setImmediate(resolve));
    should(server.pendingBodies.bytes).equal(before);
    for (const release of held) release();
    await Promise.all([first, second]);
  });

  it("refuses a message id longer than 128 characters at the sender, and the messages sent in the same turn still arrive", async () => {
    ({ a, b } = await devicePair());
    const delivered: string[] = [];
    b.onMessage("t", (message) => void delivered.push(message.id));
    await a.send("b", "t", 0); // the channel is open: the next sends of this turn leave as one frame
    const sends = ["ok-1", "x".repeat(129), "ok-2", ""].map((id) => a!.send("b", "t", 1, { id }));
    const settled = await Promise.allSettled(sends);
    should(settled.map((outcome) => outcome.status)).eql(["fulfilled", "rejected", "fulfilled", "rejected"]);
    should((settled[1] as PromiseRejectedResult).reason).match({ code: "BAD_REQUEST", message: /1 to 128 characters/ });
    should(delivered.slice(1)).eql(["ok-1", "ok-2"]);
    const body = new Readable({ read() {} });
    await should(a.sendStream("b", "t", body, { id: "y".repeat(129) })).be.rejectedWith({ code: "BAD_REQUEST" });
    should(body.destroyed).be.true();
  });

  it("ends a channel that sends an oversized or unreadable frame, not the connection, and serves the next", async () => {
    ({ a, b } = await devicePair());
    const session = await rawSession(b.port!, { key: a.identity.privateKeyPem, cert: a.identity.certificatePem });
    const open = () => session.request({ ":method": "POST", ":path": "/channel", "content-type": "application/x-peer-mesh-channel" });
    const resetWith = (stream: http2.ClientHttp2Stream): Promise<number> => new Promise((resolve) => stream.once("close", () => resolve(stream.rstCode)));
    const oversized = open();
    oversized.on("error", () => undefined);
    oversized.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1]));
    should(await resetWith(oversized)).equal(http2.constants.NGHTTP2_PROTOCOL_ERROR);
    const unreadable = open();
    unreadable.on("error", () => undefined);
    // An id of 2 bytes, a topic said to be 3 bytes long, then nothing: cut short.
    unreadable.write(encodeFrame(1, Buffer.from([0, 2, 0x6d, 0x31, 0, 3])));
    should(await resetWith(unreadable)).equal(http2.constants.NGHTTP2_PROTOCOL_ERROR);
    // The same connection still carries a good frame, answered with its outcome.
    let got = 0;
    b.onMessage("t", () => void got++);
    const good = open();
    const reader = new FrameReader();
    const sent = [{ id: "m1", topic: "t", contentType: "application/json", body: Buffer.from("1") }];
    const answer = new Promise<unknown>((resolve) => good.on("data", (chunk: Buffer) => reader.push(chunk).forEach((frame) => resolve(decodeOutcomes(frame.body, sent)))));
    good.write(encodeFrame(7, encodeItems(sent)));
    should(await answer).eql([{ ack: { id: "m1", topic: "t", receivers: 1, bytes: 1 } }]);
    should(got).equal(1);
    good.end();
    session.destroy();
  });

  it("holds a batch item to the message size limit a single request has (TOO_LARGE), on /batch and on the channel", async () => {
    ({ a, b } = await devicePair({ maxMessageBytes: 1_000 }));
    let got = 0;
    b.onMessage("t", () => void got++);
    const big = Buffer.from(JSON.stringify("x".repeat(2_000)));
    const session = await rawSession(b.port!, { key: a.identity.privateKeyPem, cert: a.identity.certificatePem });
    const batch = encodeBatch([
      { id: "small", topic: "t", contentType: "application/json", body: Buffer.from("1") },
      { id: "big", topic: "t", contentType: "application/json", body: big },
    ]);
    const answer = await rawRequest(session, { ":method": "POST", ":path": "/batch", "content-type": "application/x-peer-mesh-batch" }, batch);
    should(JSON.parse(answer.body)).match([{ ack: { id: "small" } }, { error: "TOO_LARGE", status: 413 }]);
    should(got).equal(1);
    session.destroy();
    await should(a.send("b", "t", "x".repeat(2_000))).be.rejectedWith({ code: "TOO_LARGE" });
    should(got).equal(1);
  });
});
