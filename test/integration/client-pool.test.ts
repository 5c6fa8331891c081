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
  const pools: ClientPool[] = [];

  beforeEach(async () => {
    received = [];
    wire = new WireServer({
      identity: server,
      host: "127.0.0.1",
      port: 0,
      authorize: () => true,
      receiver: {
        acceptMessage: async (message) => (received.push(message.topic), 1),
        acceptStream: async () => ({ receivers: 0, bytes: 0 }),
      },
    });
    address = `127.0.0.1:${(await wire.listen()).port}`;
  });
  afterEach(async () => {
    for (const pool of pools.splice(0)) pool.close();
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

  it("refuses a listener whose key is not the device it expected (IDENTITY_MISMATCH), and sends it nothing", async () => {
    const p = pool();
    await should(p.message({ id: Identity.generate().deviceId, address }, "t", 1)).be.rejectedWith({ code: "IDENTITY_MISMATCH" });
    should(received).eql([]);
    should(p.connectionCount).equal(0);
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
