import { once } from "node:events";
import tls from "node:tls";
import should from "should";
import { Device, Identity } from "../../lib";
import { FLAG, FRAME, http2Frame, rawRequest, rawSession } from "../helpers/raw-client";

/**
 * Floods at the HTTP/2 frame level, written by hand as an attacker's client would (Node's own client
 * refuses to send most of them): PING, SETTINGS and HEADERS+RST_STREAM floods (CVE-2019-9512, -9515,
 * 2023-44487) and oversized header blocks. The flooding connection must end, memory must stay bounded,
 * and the device must keep answering an honest peer throughout.
 */
describe("HTTP/2 floods from a peer with a valid key", function () {
  this.timeout(60_000);
  let device: Device | undefined;
  const flooder = Identity.generate();
  const honest = Identity.generate();
  afterEach(async () => {
    await device?.stop();
  });

  async function victim(): Promise<Device> {
    device = new Device({
      identity: Identity.generate(),
      peers: [{ id: flooder.deviceId, name: "flooder" }, { id: honest.deviceId, name: "honest" }],
      acl: { rules: [{ effect: "allow", principal: "known", verb: "*", resource: "*" }] },
      discovery: { staticProbeIntervalMs: 0 },
    });
    await device.start();
    device.onMessage("#", () => undefined);
    return device;
  }

  const { PING, SETTINGS, HEADERS, RST_STREAM } = FRAME;
  const { END_HEADERS, END_STREAM } = FLAG;

  /** HPACK integer with an n-bit prefix (RFC 7541 §5.1). */
  function hpackInteger(value: number, prefixBits: number, firstByte = 0): Buffer {
    const max = (1 << prefixBits) - 1;
    if (value < max) return Buffer.from([firstByte | value]);
    const bytes = [firstByte | max];
    value -= max;
    while (value >= 128) {
      bytes.push((value % 128) + 128);
      value = Math.floor(value / 128);
    }
    bytes.push(value);
    return Buffer.from(bytes);
  }
  /** GET / with :authority, and optionally one extra literal header. */
  function requestBlock(extra?: [string, string]): Buffer {
    const authority = Buffer.from("127.0.0.1");
    const parts = [Buffer.from([0x82, 0x87, 0x84]), hpackInteger(1, 4), hpackInteger(authority.length, 7), authority];
    if (extra) {
      const [name, value] = extra.map((text) => Buffer.from(text));
      parts.push(Buffer.from([0x00]), hpackInteger(name.length, 7), name, hpackInteger(value.length, 7), value);
    }
    return Buffer.concat(parts);
  }

  /** A TLS connection speaking raw HTTP/2 with the flooder's key; it reads nothing back unless asked. */
  async function rawConnection(port: number): Promise<{ socket: tls.TLSSocket; closed: Promise<void> }> {
    const socket = tls.connect({ host: "127.0.0.1", port, key: flooder.privateKeyPem, cert: flooder.certificatePem, rejectUnauthorized: false, ALPNProtocols: ["h2"], minVersion: "TLSv1.3" });
    socket.on("error", () => undefined);
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    await once(socket, "secureConnect");
    socket.write(Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
    socket.write(http2Frame(SETTINGS, 0, 0));
    // The device's SETTINGS (its header limits among them) apply once acknowledged, as a client would.
    await new Promise<void>((resolve) => {
      let seen = Buffer.alloc(0);
      const onData = (chunk: Buffer): void => {
        seen = Buffer.concat([seen, chunk]);
        if (seen.length >= 9 && seen[3] === SETTINGS && (seen[4] & 1) === 0) {
          socket.off("data", onData);
          socket.write(http2Frame(SETTINGS, 1, 0));
          resolve();
        }
      };
      socket.on("data", onData);
    });
    return { socket, closed };
  }

  /** Writes frames until the connection ends or `max` are written, never reading the answers; resolves with how many went out. */
  async function flood(socket: tls.TLSSocket, make: (i: number) => Buffer, max: number): Promise<number> {
    socket.pause(); // the flooder does not read: answers pile up at the device
    let i = 0;
    const ended = new Promise<void>((resolve) => {
      socket.once("close", () => resolve());
      socket.once("error", () => resolve());
    });
    while (i < max && !socket.destroyed && socket.writable) {
      const batch = Buffer.concat(Array.from({ length: 500 }, () => make(i++)));
      if (!socket.write(batch)) await Promise.race([new Promise((resolve) => socket.once("drain", resolve)), ended]);
    }
    return i;
  }

  async function honestStillServed(port: number): Promise<number> {
    const session = await rawSession(port, { key: honest.privateKeyPem, cert: honest.certificatePem });
    try {
      return (await rawRequest(session, { ":method": "POST", ":path": "/msg/ping", "x-peer-mesh-id": `h-${Math.random()}`, "content-type": "application/json" }, "1")).status;
    } finally {
      session.close();
    }
  }

  async function within<T>(promise: Promise<T>, ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([promise.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)))]);
    clearTimeout(timer);
    return done;
  }

  for (const [name, make, max] of [
    ["PING frames (each asks for an ACK)", () => http2Frame(PING, 0, 0, Buffer.alloc(8, 7)), 400_000],
    ["SETTINGS frames (each asks for an ACK)", () => http2Frame(SETTINGS, 0, 0), 400_000],
    ["HEADERS then RST_STREAM at once (rapid reset)", (i: number) => Buffer.concat([http2Frame(HEADERS, END_HEADERS | END_STREAM, 2 * i + 1, requestBlock()), http2Frame(RST_STREAM, 0, 2 * i + 1, Buffer.from([0, 0, 0, 8]))]), 50_000],
  ] as Array<[string, (i: number) => Buffer, number]>) {
    it(`a flood of ${name} ends the flooding connection, holds memory, and the device keeps serving`, async () => {
      const v = await victim();
      const before = process.memoryUsage().rss;
      const { socket, closed } = await rawConnection(v.port!);
      const sent = await flood(socket, make, max);
      const ended = await within(closed, 15_000);
      const grew = (process.memoryUsage().rss - before) / 1024 / 1024;
      console.log(`      ${name}: ${sent} frames written before the device ended the connection: ${ended}; RSS +${grew.toFixed(0)} MB`);
      should(ended).be.true();
      should(sent).be.below(max);
      should(grew).be.below(200);
      should(await honestStillServed(v.port!)).equal(200);
      socket.destroy();
    });
  }

  it("a request with more than 64 header fields, or a header list past 16 KiB (in HEADERS + CONTINUATION), is reset alone; the next request on the connection is answered", async () => {
    const v = await victim();
    const { socket } = await rawConnection(v.port!);
    const answers: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => answers.push(chunk));
    const many = Buffer.concat([requestBlock(), ...Array.from({ length: 100 }, (_, i) => Buffer.concat([Buffer.from([0x00]), hpackInteger(4, 7), Buffer.from(`x${String(i).padStart(3, "0")}`), hpackInteger(1, 7), Buffer.from("v")]))]);
    const big = requestBlock(["x-big", "a".repeat(20_000)]);
    const CONTINUATION = 9;
    socket.write(http2Frame(HEADERS, END_HEADERS | END_STREAM, 1, many));
    socket.write(Buffer.concat([http2Frame(HEADERS, END_STREAM, 3, big.subarray(0, 16_000)), http2Frame(CONTINUATION, END_HEADERS, 3, big.subarray(16_000))]));
    socket.write(http2Frame(HEADERS, END_HEADERS | END_STREAM, 5, requestBlock()));
    const deadline = Date.now() + 5_000;
    const frames = (): Array<{ type: number; stream: number }> => {
      const received = Buffer.concat(answers);
      const list: Array<{ type: number; stream: number }> = [];
      for (let offset = 0; offset + 9 <= received.length; offset += 9 + received.readUIntBE(offset, 3)) list.push({ type: received[offset + 3], stream: received.readUInt32BE(offset + 5) & 0x7fffffff });
      return list;
    };
    while (Date.now() < deadline && !frames().some((f) => f.type === HEADERS && f.stream === 5)) await new Promise((resolve) => setTimeout(resolve, 50));
    const seen = frames();
    console.log(`      frames back: ${seen.map((f) => `${f.type}@${f.stream}`).join(" ")}`);
    should(seen.some((f) => f.type === RST_STREAM && f.stream === 1)).be.true();
    should(seen.some((f) => f.type === RST_STREAM && f.stream === 3)).be.true();
    should(seen.some((f) => f.type === HEADERS && f.stream === 5)).be.true();
    should(await honestStillServed(v.port!)).equal(200);
    socket.destroy();
  });
});
