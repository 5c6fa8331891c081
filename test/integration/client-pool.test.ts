import net from "node:net";
import tls from "node:tls";
import { Duplex } from "node:stream";
import should from "should";
import { ClientPool, Identity, WireServer } from "../../lib";
import { freePort } from "../helpers/ports";

/** The client pool against a bare wire server (no Device): pooling, identity pinning and its timeouts. */
describe("ClientPool", function () {
  this.timeout(20_000);
  const server = Identity.generate();
  const client = Identity.generate();
  let wire: WireServer;
  let address: string;
  let received: string[];
  /** Messages on this topic are never answered (a flow that holds them). */
  const HELD = "held";
  const pools: ClientPool[] = [];
  /** Closes a relay and destroys every socket it relayed (a stalled one would stay open otherwise). */
  const relays: Array<() => void> = [];

  beforeEach(async () => {
    received = [];
    wire = new WireServer({
      identity: server,
      host: "127.0.0.1",
      port: 0,
      authorize: () => true,
      receiver: {
        acceptMessage: async (message) => (message.topic === HELD ? new Promise<number>(() => undefined) : (received.push(message.topic), 1)),
        acceptStream: async () => ({ receivers: 0, bytes: 0 }),
      },
    });
    address = `127.0.0.1:${(await wire.listen()).port}`;
  });
  afterEach(async () => {
    for (const pool of pools.splice(0)) pool.close();
    for (const close of relays.splice(0)) close();
    await wire.close();
  });

  function pool(options: ConstructorParameters<typeof ClientPool>[1] = {}): ClientPool {
    const made = new ClientPool(client, options);
    pools.push(made);
    return made;
  }

  it("carries 200 concurrent messages to one peer over one connection, each acked once", async () => {
    const p = pool();
    const acks = await Promise.all(Array.from({ length: 200 }, (_, i) => p.message({ id: server.deviceId, address }, `t/${i}`, { i })));
    should(new Set(acks.map((ack) => ack.id)).size).equal(200);
    should(acks.every((ack) => ack.receivers === 1)).be.true();
    should(received.sort()).eql(Array.from({ length: 200 }, (_, i) => `t/${i}`).sort());
    should(p.connectionCount).equal(1);
  });

  it("loads its key into a TLS context when it is made, so that a device's first message does not wait for it", async () => {
    const fresh = Identity.generate();
    const made = new ClientPool(fresh);
    pools.push(made);
    // Loading a key and certificate into OpenSSL took 1.1–1.4 ms of a first message's 6.6–8.0 ms.
    const contexts = tls.createSecureContext;
    let built = 0;
    tls.createSecureContext = ((options) => {
      built += 1;
      return contexts(options);
    }) as typeof tls.createSecureContext;
    try {
      await made.message({ id: server.deviceId, address }, "first", 1);
    } finally {
      tls.createSecureContext = contexts;
    }
    should(built).equal(0);
    should(received).eql(["first"]);
  });

  it("refuses a listener whose key is not the device it expected (IDENTITY_MISMATCH), and sends it nothing", async () => {
    const p = pool();
    await should(p.message({ id: Identity.generate().deviceId, address }, "t", 1)).be.rejectedWith({ code: "IDENTITY_MISMATCH" });
    should(received).eql([]);
    should(p.connectionCount).equal(0);
  });

  it("dials an IPv6 address, host in brackets", async () => {
    const v6 = new WireServer({ identity: server, host: "::1", port: 0, authorize: () => true, receiver: { acceptMessage: async (message) => (received.push(message.topic), 1), acceptStream: async () => ({ receivers: 0, bytes: 0 }) } });
    try {
      const { port } = await v6.listen();
      const ack = await pool().message({ id: server.deviceId, address: `[::1]:${port}` }, "over-v6", 1);
      should(ack.receivers).equal(1);
      should(received).eql(["over-v6"]);
    } finally {
      await v6.close();
    }
  });

  it("says UNREACHABLE for an address nobody listens on, and CLOSED once closed", async () => {
    const p = pool();
    await should(p.message({ id: server.deviceId, address: `127.0.0.1:${await freePort()}` }, "t", 1)).be.rejectedWith({ code: "UNREACHABLE" });
    p.close();
    await should(p.message({ id: server.deviceId, address }, "t", 1)).be.rejectedWith({ code: "CLOSED" });
  });

  it("gives up a connection that never completes its handshake after the endpoint's connect timeout", async () => {
    const p = pool();
    // A dial (Tor, BLE) whose other end takes what is written and never answers.
    const silent = new Duplex({ read: () => undefined, write: (_chunk, _encoding, done) => done() });
    const started = Date.now();
    await should(p.message({ id: server.deviceId, address: "silent.test", dial: () => silent, connectTimeoutMs: 300 }, "t", 1)).be.rejectedWith({ code: "TIMEOUT" });
    should(Date.now() - started).be.below(5_000);
    should(p.connectionCount).equal(0);
  });

  /** A TCP relay to the wire server that can stop moving the bytes of the connections it has (a path in
   * TCP backoff) while new connections go through. */
  async function stallableRelay(): Promise<{ address: string; stall(): void; connections: number }> {
    const pipes: net.Socket[] = [];
    const everySocket: net.Socket[] = [];
    let connections = 0;
    const relay = net.createServer((inbound) => {
      connections += 1;
      const [host, port] = address.split(":");
      const outbound = net.connect(Number(port), host);
      inbound.pipe(outbound).pipe(inbound);
      for (const socket of [inbound, outbound]) socket.on("error", () => undefined);
      pipes.push(inbound, outbound);
      everySocket.push(inbound, outbound);
    });
    relays.push(() => {
      relay.close();
      for (const socket of everySocket) socket.destroy();
    });
    await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
    return {
      address: `127.0.0.1:${(relay.address() as net.AddressInfo).port}`,
      stall: () => {
        for (const socket of pipes.splice(0)) {
          socket.unpipe();
          socket.pause();
        }
      },
      get connections() {
        return connections;
      },
    };
  }

  it("drops a connection that answers neither a request nor a ping, and sends the request again on a new one", async () => {
    const relay = await stallableRelay();
    const p = pool();
    const peer = { id: server.deviceId, address: relay.address };
    await p.message(peer, "before", 1, { timeoutMs: 1_000 });
    const first = await p.request(peer, { method: "GET", path: "/db/readings/", timeoutMs: 1_000 });
    first.body.resume();
    relay.stall();
    const again = await p.request(peer, { method: "GET", path: "/db/readings/", timeoutMs: 1_000 });
    again.body.resume();
    should(again.status).equal(first.status);
    should(relay.connections).equal(2);
    // Messages too: the stalled connection is gone from the pool, so the next one is sent on the new.
    relay.stall();
    await p.message(peer, "after", 2, { timeoutMs: 1_000 });
    should(received).eql(["before", "after"]);
    should(relay.connections).equal(3);
  });

  it("keeps a connection that answers a ping when only the peer's flow is slow, and says TIMEOUT", async () => {
    const p = pool();
    await should(p.message({ id: server.deviceId, address }, HELD, 1, { timeoutMs: 300 })).be.rejectedWith({ code: "TIMEOUT" });
    should(p.connectionCount).equal(1);
    await p.message({ id: server.deviceId, address }, "next", 2, { timeoutMs: 1_000 });
    should(received).eql(["next"]);
  });

  it("closes a connection left idle, and dials again for the next message", async () => {
    const p = pool({ idleMs: 200 });
    await p.message({ id: server.deviceId, address }, "first", 1);
    should(p.connectionCount).equal(1);
    const deadline = Date.now() + 5_000;
    while (p.connectionCount > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    should(p.connectionCount).equal(0);
    await p.message({ id: server.deviceId, address }, "second", 2);
    should(received).eql(["first", "second"]);
  });
});
