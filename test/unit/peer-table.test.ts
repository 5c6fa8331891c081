import fc from "fast-check";
import should from "should";
import { PeerInfo, PeerTable, PeerView } from "../../lib";
import { MemoryEther, MemoryTransport } from "../helpers/memory-transport";

/** A distinct device id per number. */
const ID = (n: number): string => String(n).replace(/\d/g, (digit) => "abcdefghij"[Number(digit)]).padStart(52, "2");

describe("PeerTable", () => {
  function recording(table: PeerTable): Array<[string, PeerInfo]> {
    const events: Array<[string, PeerInfo]> = [];
    for (const event of ["found", "lost", "changed"] as const) table.on(event, (peer) => events.push([event, peer]));
    return events;
  }

  it("merges transports for one id, prefers a verified route over a better-ranked claim, and says found / changed / lost once each", () => {
    const table = new PeerTable({ isTrusted: (id) => id === ID(1), nameOf: () => undefined });
    const events = recording(table);
    table.report("static", 20, { id: ID(1), address: "10.0.0.1:7000", verified: true });
    // Anyone on the LAN can announce a known peer's id over mDNS: the probed, TLS-verified address stays the one used.
    table.report("mdns", 10, { id: ID(1), address: "169.254.0.1:7000", name: "press", verified: false });
    table.report("mdns", 10, { id: ID(1), address: "169.254.0.1:7000", name: "press", verified: false }); // a heartbeat
    table.withdraw("mdns", ID(1));
    table.withdraw("static", ID(1));
    table.withdraw("static", ID(1));
    should(events.map(([event, peer]) => `${event} ${peer.transport} ${peer.address}`)).eql([
      "found static 10.0.0.1:7000",
      "changed static 10.0.0.1:7000",
      "changed static 10.0.0.1:7000",
      "lost static 10.0.0.1:7000",
    ]);
    should(events[1][1]).containEql({ transports: ["static", "mdns"], name: "press", trusted: true, verified: true });
    should(table.size).equal(0);
  });

  it("among routes that are all claims (or all verified), prefers the better-ranked transport", () => {
    const table = new PeerTable();
    table.report("ble", 30, { id: ID(5), address: "ble-1", verified: false });
    table.report("mdns", 10, { id: ID(5), address: "169.254.0.5:7000", verified: false });
    should(table.get(ID(5))).containEql({ transport: "mdns", address: "169.254.0.5:7000", verified: false });
    table.report("tor", 50, { id: ID(6), address: "x.onion:443", verified: true });
    table.report("static", 20, { id: ID(6), address: "10.0.0.6:7000", verified: true });
    should(table.get(ID(6))).containEql({ transport: "static", address: "10.0.0.6:7000" });
  });

  it("bestRoute, the dialler's pick, is the route get() describes first, over random routes and sightings", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ transport: fc.constantFrom("static", "mdns", "ble", "tor", "cloud"), rank: fc.integer({ min: 0, max: 3 }), verified: fc.boolean(), at: fc.integer({ min: 0, max: 3 }), withdraw: fc.boolean() }), { minLength: 1, maxLength: 12 }),
        (sightings) => {
          let now = 0;
          const table = new PeerTable({ now: () => now });
          for (const [i, sighting] of sightings.entries()) {
            now = sighting.at;
            if (sighting.withdraw && i % 3 === 0) table.withdraw(sighting.transport, ID(7));
            else table.report(sighting.transport, sighting.rank, { id: ID(7), address: `h:${i}`, verified: sighting.verified });
          }
          const described = table.get(ID(7));
          const best = table.bestRoute(ID(7));
          if (!described) should(best).be.undefined();
          else should(best).containEql({ transport: described.transport, address: described.address });
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it("refreshes lastSeen on a repeated sighting without an event", () => {
    let now = 1_000;
    const table = new PeerTable({ now: () => now });
    const events = recording(table);
    table.report("mdns", 10, { id: ID(2), address: "h:1", verified: false });
    now = 5_000;
    table.report("mdns", 10, { id: ID(2), address: "h:1", verified: false });
    should(events).have.length(1);
    should(table.get(ID(2))?.lastSeen).equal(5_000);
  });

  it("prefers a configured name over an announced one", () => {
    const table = new PeerTable({ nameOf: (id) => (id === ID(3) ? "line gateway" : undefined) });
    table.report("mdns", 10, { id: ID(3), address: "h:1", name: "whatever it says", verified: false });
    should(table.get(ID(3))?.name).equal("line gateway");
  });

  it("keeps at most maxPeers: strangers beyond it are dropped, a trusted newcomer evicts the stranger seen longest ago", () => {
    let now = 0;
    const trusted = ID(99);
    const table = new PeerTable({ maxPeers: 3, isTrusted: (id) => id === trusted, now: () => ++now });
    const events = recording(table);
    for (let i = 10; i < 20; i++) table.report("mdns", 10, { id: ID(i), address: `h:${i}`, verified: false });
    should(table.size).equal(3);
    should(table.dropped).equal(7);
    table.report("mdns", 10, { id: ID(10), address: "h:10", verified: false }); // ID(10) seen again: ID(11) is now the oldest
    table.report("static", 20, { id: trusted, address: "h:99", verified: true });
    should(table.list().map((peer) => peer.id).sort()).eql([ID(10), ID(12), trusted].sort());
    should(events.filter(([event]) => event === "lost").map(([, peer]) => peer.id)).eql([ID(11)]);
  });

  it("forgets every route of a transport that is detached", () => {
    const transport = new MemoryTransport(new MemoryEther(), ID(4), "h:4");
    const table = new PeerTable();
    const detach = table.attach(transport);
    transport.emit("found", { id: ID(5), address: "h:5", verified: false });
    should(table.size).equal(1);
    detach();
    transport.emit("found", { id: ID(6), address: "h:6", verified: false });
    should(table.size).equal(0);
  });
});

describe("PeerView", () => {
  it("shows only the chosen transports and trusted peers, with found/lost from its own point of view", () => {
    const trusted = ID(7);
    const table = new PeerTable({ isTrusted: (id) => id === trusted });
    const view = new PeerView(table, { transports: ["static"], trustedOnly: true });
    const events: string[] = [];
    for (const event of ["found", "lost", "changed"] as const) view.on(event, (peer) => events.push(`${event} ${peer.id === trusted ? "trusted" : "stranger"} ${peer.transports.join("+")} ${peer.address}`));
    table.report("mdns", 10, { id: trusted, address: "lan:1", verified: false });
    table.report("static", 20, { id: ID(8), address: "s:8", verified: true }); // not trusted
    table.report("static", 20, { id: trusted, address: "s:7", verified: true });
    table.report("mdns", 10, { id: trusted, address: "lan:2", verified: false }); // invisible to a static view
    table.withdraw("static", trusted);
    table.withdraw("mdns", trusted);
    should(events).eql(["found trusted static s:7", "lost trusted static s:7"]);
    should(view.size).equal(0);
    view.close();
    table.report("static", 20, { id: trusted, address: "s:7", verified: true });
    should(events).have.length(2);
  });

  it("lists what it shows", () => {
    const table = new PeerTable();
    table.report("mdns", 10, { id: ID(1), address: "a:1", verified: false });
    table.report("static", 20, { id: ID(2), address: "b:2", verified: true });
    should(new PeerView(table, { transports: ["mdns"] }).list().map((peer) => peer.id)).eql([ID(1)]);
    should(new PeerView(table).list()).have.length(2);
  });
});
