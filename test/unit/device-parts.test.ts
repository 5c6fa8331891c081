import { EventEmitter } from "node:events";
import { PassThrough, Readable } from "node:stream";
import should from "should";
import { Identity, PeerDirectory, PeerTable, type Transport, type TransportEvents } from "../../lib";
import { Dialer } from "../../lib/device/dialer";
import { Inbox } from "../../lib/device/inbox";

const a = Identity.generate().deviceId;
const b = Identity.generate().deviceId;

describe("the device's inbox", () => {
  const inbox = (): Inbox => new Inbox("selfself", (id) => ({ id, name: id === a ? "a" : undefined }));

  it("hands a message to every listener on its topic and says how many took it; none is NO_RECEIVER", async () => {
    const box = inbox();
    const got: string[] = [];
    box.onMessage("door/#", (message) => void got.push(`1:${message.topic}:${message.from.name}`));
    const off = box.onMessage("door/+", (message) => void got.push(`2:${message.topic}`));
    should(await box.acceptMessage({ id: "m1", from: a, topic: "door/front", payload: true, bytes: 4 })).equal(2);
    off();
    should(await box.acceptMessage({ id: "m2", from: a, topic: "door/front", payload: true, bytes: 4 })).equal(1);
    should(got).eql(["1:door/front:a", "2:door/front", "1:door/front:a"]);
    await should(box.acceptMessage({ id: "m3", from: a, topic: "window", payload: 1, bytes: 1 })).be.rejectedWith({ code: "NO_RECEIVER" });
  });

  it("copies a stream to two listeners at the pace of the slower, and counts every byte even if one stops reading", async () => {
    const box = inbox();
    const lengths: number[] = [];
    box.onStream("logs/#", async (stream) => {
      let n = 0;
      for await (const chunk of stream.body) n += (chunk as Buffer).length;
      lengths.push(n);
    });
    box.onStream("logs/+", async (stream) => {
      for await (const _ of stream.body) break; // reads one chunk, then stops
      lengths.push(-1);
    });
    const body = Readable.from(Array.from({ length: 50 }, () => Buffer.alloc(1024, 7)));
    const result = await box.acceptStream({ id: "s1", from: b, topic: "logs/today", body: body.pipe(new PassThrough()) } as never);
    should(result).eql({ receivers: 2, bytes: 50 * 1024 });
    should(lengths.sort()).eql([-1, 50 * 1024]);
  });
});

describe("the device's inbox, when a stream listener gives up", () => {
  const inbox = (): Inbox => new Inbox("selfself", (id) => ({ id }));
  const body = (): PassThrough => Readable.from(Array.from({ length: 200 }, () => Buffer.alloc(1024, 1))).pipe(new PassThrough());

  it("one that returns without reading holds nobody back", async () => {
    const box = inbox();
    let read = 0;
    box.onStream("x", async (stream) => {
      for await (const chunk of stream.body) read += (chunk as Buffer).length;
    });
    box.onStream("#", async () => undefined);
    should(await box.acceptStream({ id: "s", from: a, topic: "x", body: body() } as never)).eql({ receivers: 2, bytes: 200 * 1024 });
    should(read).equal(200 * 1024);
  });

  it("one that fails refuses the stream, and the other listener's copy ends with the error instead of waiting", async () => {
    const box = inbox();
    let otherEnded!: (outcome: string) => void;
    const other = new Promise<string>((resolve) => (otherEnded = resolve));
    box.onStream("x", async (stream) => {
      try {
        for await (const _ of stream.body) void _;
        otherEnded("read to the end");
      } catch (err) {
        otherEnded((err as Error).message);
      }
    });
    box.onStream("#", async () => {
      throw new Error("disk full");
    });
    await should(box.acceptStream({ id: "s", from: a, topic: "x", body: body() } as never)).be.rejectedWith(/disk full/);
    should(await other).match(/disk full/);
  });
});

class DialingTransport extends EventEmitter<TransportEvents> implements Transport {
  readonly rank = 60;
  readonly carriesIp = false;
  dialled: string[] = [];
  constructor(readonly name: string, private readonly takes: RegExp) {
    super();
  }
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  connect(address: string): never {
    this.dialled.push(address);
    return new PassThrough() as never;
  }
  canDial(address: string): boolean {
    return this.takes.test(address);
  }
}

describe("the device's dialer", () => {
  function dialer(transports: Transport[] = [], options: { torOnly?: boolean } = {}) {
    const peers = new PeerDirectory([{ id: a, name: "front door", address: "192.0.2.1:4443" }]);
    const peerTable = new PeerTable({ isTrusted: (id) => peers.has(id) });
    return { dialer: new Dialer({ peers, peerTable, transports: () => transports, hasTor: true, torOnly: options.torOnly ?? false, mesh: () => undefined }), peerTable };
  }

  it("resolves a configured peer by id, name or prefix, and a paired one by its id", () => {
    const { dialer: d } = dialer();
    should(d.resolve(a.toUpperCase())).equal(a);
    should(d.resolve(" front door ")).equal(a);
    should(d.resolve(a.slice(0, 9))).equal(a);
    should(() => d.resolve(b)).throw({ code: "UNKNOWN_PEER" });
    d.notePaired(b, "192.0.2.2:4443");
    should(d.resolve(b)).equal(b);
    should(() => d.resolve(b.slice(0, 12))).throw({ code: "UNKNOWN_PEER" }); // a paired peer out of range: whole id only
  });

  it("dials an address through the transport that takes it, plain TCP otherwise, and never an onion address without one", () => {
    const onion = `${"o".repeat(56)}.onion:443`;
    const radio = new DialingTransport("tor", /\.onion:443$/);
    const { dialer: withTor } = dialer([radio]);
    const through = withTor.endpointAt(b, onion);
    should(through.dial).be.a.Function();
    through.dial!();
    should(radio.dialled).eql([onion]);
    should(withTor.endpointAt(b, "192.0.2.9:1")).eql({ id: b, address: "192.0.2.9:1" });
    should(() => dialer([]).dialer.endpointAt(b, onion)).throw({ code: "UNREACHABLE" });
  });

  it("keeps to Tor in Tor-only mode: direct addresses are not usable", () => {
    const onion = `${"o".repeat(56)}.onion:443`;
    const { dialer: d } = dialer([], { torOnly: true });
    should(d.usable(["192.0.2.1:4443", onion])).eql([onion]);
    should(() => d.endpoint("front door")).throw({ code: "UNREACHABLE" }); // its only address is direct
  });
});
