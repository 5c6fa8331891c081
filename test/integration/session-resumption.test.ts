import type { Http2SecureServer } from "node:http2";
import type { TLSSocket } from "node:tls";
import should from "should";
import { ClientPool, Identity, WireServer } from "../../lib";
import { probeDevice } from "../../lib/discovery/static-transport";
import { SessionTickets, type TicketProof } from "../../lib/wire/session-tickets";

/**
 * TLS session resumption between known peers: a pool's next connection to a peer it verified before
 * resumes, and resuming never lets another key answer for that peer or hides the dialler from the listener.
 */
describe("TLS session resumption", function () {
  this.timeout(20_000);
  const client = Identity.generate();
  const pools: ClientPool[] = [];
  const servers: WireServer[] = [];

  afterEach(async () => {
    for (const pool of pools.splice(0)) pool.close();
    for (const wire of servers.splice(0)) await wire.close();
  });

  interface Listener {
    wire: WireServer;
    address: string;
    /** The sender of each message, as the listener saw it. */
    from: string[];
    /** Whether each TLS connection the listener took resumed an earlier session. */
    resumed: boolean[];
  }

  async function listen(identity: Identity, options: { port?: number; privateListener?: boolean } = {}): Promise<Listener> {
    const from: string[] = [];
    const resumed: boolean[] = [];
    const wire = new WireServer({
      identity,
      host: "127.0.0.1",
      port: options.port ?? 0,
      privateListener: options.privateListener,
      authorize: () => true,
      receiver: {
        acceptMessage: async (message) => (from.push(message.from), 1),
        acceptStream: async () => ({ receivers: 0, bytes: 0 }),
      },
    });
    servers.push(wire);
    const { port } = await wire.listen();
    // The listener's own TLS server: what each handshake was is only visible there.
    (wire as unknown as { server: Http2SecureServer }).server.on("secureConnection", (socket: TLSSocket) => resumed.push(socket.isSessionReused()));
    return { wire, address: `127.0.0.1:${port}`, from, resumed };
  }

  function pool(options: ConstructorParameters<typeof ClientPool>[1] = {}): ClientPool {
    const made = new ClientPool(client, { idleMs: 150, ...options });
    pools.push(made);
    return made;
  }

  async function until(condition: () => boolean): Promise<void> {
    const deadline = Date.now() + 5_000;
    while (!condition() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  }

  async function idle(p: ClientPool): Promise<void> {
    const deadline = Date.now() + 5_000;
    while (p.connectionCount > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
    should(p.connectionCount).equal(0);
  }

  for (const privateListener of [false, true]) {
    it(`resumes the next connection to a peer it verified, and both ends still know who the other is${privateListener ? " (private listener)" : ""}`, async () => {
      const peer = Identity.generate();
      const listener = await listen(peer, { privateListener });
      const keys: string[] = [];
      const p = pool({ onPeerKey: (id) => keys.push(id) });
      for (let i = 0; i < 4; i++) {
        await p.message({ id: peer.deviceId, address: listener.address }, "t", i);
        await idle(p);
      }
      // A full handshake brings two tickets, each offered once; a resumed one brings none.
      should(listener.resumed).eql([false, true, true, false]);
      should(listener.from).eql(Array(4).fill(client.deviceId));
      // Private discovery learns the peer's key from every dial, resumed or not.
      should(keys).eql(Array(4).fill(peer.deviceId));
    });
  }

  it("falls back to a full handshake when the peer restarted (its tickets died with it)", async () => {
    const peer = Identity.generate();
    const first = await listen(peer);
    const p = pool();
    await p.message({ id: peer.deviceId, address: first.address }, "t", 1);
    await idle(p);
    await first.wire.close();
    const again = await listen(peer, { port: Number(first.address.split(":")[1]) });
    await p.message({ id: peer.deviceId, address: again.address }, "t", 2);
    should(again.resumed).eql([false]);
    should(again.from).eql([client.deviceId]);
  });

  it("never lets another key answer for a peer it holds a ticket from", async () => {
    const peer = Identity.generate();
    const real = await listen(peer);
    const p = pool();
    await p.message({ id: peer.deviceId, address: real.address }, "t", 1);
    await idle(p);
    await real.wire.close();
    // Someone else takes the address: the ticket is of no use to it, and its own key is not the peer's.
    const impostor = await listen(Identity.generate(), { port: Number(real.address.split(":")[1]) });
    await should(p.message({ id: peer.deviceId, address: impostor.address }, "t", 2)).be.rejectedWith({ code: "IDENTITY_MISMATCH" });
    should(impostor.from).eql([]);
  });
  it("resumes a static address's probes, and names whoever answers there without the ticket", async () => {
    const peer = Identity.generate();
    const listener = await listen(peer);
    const tickets = new SessionTickets();
    for (let i = 0; i < 4; i++) {
      should(await probeDevice(client, listener.address, 3_000, undefined, undefined, tickets)).equal(peer.deviceId);
      // The tickets follow the handshake the probe already answered with (probes are seconds apart).
      await until(() => listener.resumed.length === i + 1 && (i % 3 !== 0 || tickets.size === 1));
    }
    should(listener.resumed).eql([false, true, true, false]);
    await listener.wire.close();
    const other = Identity.generate();
    const next = await listen(other, { port: Number(listener.address.split(":")[1]) });
    should(await probeDevice(client, next.address, 3_000, undefined, undefined, tickets)).equal(other.deviceId);
    await until(() => next.resumed.length === 1);
    should(next.resumed).eql([false]);
  });
});

describe("SessionTickets", () => {
  const proof = (validToMs: number): TicketProof => ({ id: "peer", spki: Buffer.from("key"), validToMs });

  it("offers no ticket once the peer's certificate has expired", () => {
    const tickets = new SessionTickets();
    tickets.remember("a", Buffer.from("ticket"), proof(1_000));
    tickets.remember("b", Buffer.from("ticket"), proof(1_000));
    should(tickets.take("a", 999)?.ticket.toString()).equal("ticket");
    should(tickets.take("b", 1_000)).be.undefined();
    should(tickets.size).equal(0);
  });

  it("offers each ticket once (one offered again would link this device's connections for an observer)", () => {
    const tickets = new SessionTickets();
    tickets.remember("a", Buffer.from("a1"), proof(Infinity));
    tickets.remember("a", Buffer.from("a2"), proof(Infinity));
    should(tickets.take("a")?.ticket.toString()).equal("a1");
    should(tickets.take("a")?.ticket.toString()).equal("a2");
    should(tickets.take("a")).be.undefined();
  });

  it("drops a peer's tickets when another key's replace them", () => {
    const tickets = new SessionTickets();
    tickets.remember("addr", Buffer.from("x1"), { ...proof(Infinity), id: "x" });
    tickets.remember("addr", Buffer.from("y1"), { ...proof(Infinity), id: "y" });
    should(tickets.take("addr")).match({ id: "y", ticket: Buffer.from("y1") });
    should(tickets.take("addr")).be.undefined();
  });

  it("forgets the peer whose newest ticket is oldest past its bound", () => {
    const tickets = new SessionTickets(2);
    tickets.remember("a", Buffer.from("a1"), proof(Infinity));
    tickets.remember("b", Buffer.from("b1"), proof(Infinity));
    tickets.remember("a", Buffer.from("a2"), proof(Infinity));
    tickets.remember("c", Buffer.from("c1"), proof(Infinity));
    should(tickets.take("a")?.ticket.toString()).equal("a1");
    should(tickets.take("b")).be.undefined();
    should(tickets.take("c")?.ticket.toString()).equal("c1");
  });
});
