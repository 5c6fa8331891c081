import should from "should";
import { Device, Identity, PeerInfo, StaticTransport, type Transport, type TransportSource } from "../../lib";
import { waitFor } from "../helpers/events";
import { MemoryEther, MemoryTransport } from "../helpers/memory-transport";
import { freePort } from "../helpers/ports";
import { type ComplianceSetup, transportCompliance } from "../transport-compliance";
import { FolderTransport, folderTransport } from "../../docs/transport-plugin/folder-transport";
import { TempDirs } from "../helpers/storage";

const folderDirs = new TempDirs();

/** A subject device that can be started again on the same port, as a restarted process would. */
function restartableDevice(identity: Identity, port: number, transports: () => TransportSource[] = () => []) {
  let device: Device | undefined;
  return {
    async start() {
      device = new Device({ identity, host: "127.0.0.1", port, discovery: { transports: transports() } });
      await device.start();
    },
    async stop() {
      await device?.stop();
      device = undefined;
    },
  };
}

/** A compliance setup whose subject is a device that can restart on the same port, with these transports. */
async function restartableSubject(options: { observer: (observer: Identity, port: number) => Transport; transports?: (subject: Identity, port: number) => TransportSource[]; withinMs: number }): Promise<ComplianceSetup> {
  const observerIdentity = Identity.generate();
  const subject = Identity.generate();
  const port = await freePort();
  const device = restartableDevice(subject, port, () => options.transports?.(subject, port) ?? []);
  return {
    observer: options.observer(observerIdentity, port),
    observerIdentity,
    subjectId: subject.deviceId,
    startSubject: () => device.start(),
    stopSubject: () => device.stop(),
    foundWithinMs: options.withinMs,
    lostWithinMs: options.withinMs,
    dispose: () => device.stop(),
  };
}

transportCompliance("memory (test-only)", () => {
  const ether = new MemoryEther(100);
  return restartableSubject({
    observer: (observer) => new MemoryTransport(ether, observer.deviceId, "127.0.0.1:1"),
    transports: (subject, port) => [new MemoryTransport(ether, subject.deviceId, `127.0.0.1:${port}`)],
    withinMs: 1_000,
  });
});

transportCompliance("static", () =>
  restartableSubject({ observer: (observer, port) => new StaticTransport({ identity: observer, entries: [{ address: `127.0.0.1:${port}` }], probeIntervalMs: 100 }), withinMs: 2_000 }),
);

transportCompliance("folder (an external transport, docs/transport-plugin)", () => {
  const dir = folderDirs.make("peer-mesh-folder-");
  return restartableSubject({
    observer: (observer) => new FolderTransport({ dir, intervalMs: 100 }, { id: observer.deviceId, address: "127.0.0.1:1" }),
    transports: () => [folderTransport({ dir, intervalMs: 100 })],
    withinMs: 2_000,
  });
});

describe("a transport from another package", () => {
  const devices: Device[] = [];
  after(() => folderDirs.removeAll());
  afterEach(async () => {
    await Promise.all(devices.splice(0).map((device) => device.stop()));
  });

  it("plugs in as a factory: two devices find each other through it alone and exchange a message", async () => {
    const dir = folderDirs.make("peer-mesh-folder-");
    const make = async (name: string): Promise<Device> => {
      const device = new Device({ identity: Identity.generate(), name, discovery: { staticProbeIntervalMs: 0, transports: [folderTransport({ dir, intervalMs: 100 })] } });
      devices.push(device);
      await device.start();
      return device;
    };
    const [a, b] = [await make("a"), await make("b")];
    a.addKnownPeer({ id: b.id, name: "b" }); // trusted by id, no address: only the folder says where b is
    b.addKnownPeer({ id: a.id, name: "a" });
    await waitFor(a.peerTable, "found", () => a.peerTable.get(b.id)?.transport === "folder", 5_000, "b through the folder");
    const got = new Promise<unknown>((resolve) => b.onMessage("hello", (message) => void resolve(message.payload)));
    await a.send("b", "hello", { via: "folder" });
    should(await got).eql({ via: "folder" });
  });
});

describe("StaticTransport", () => {
  const stops: Array<() => Promise<void>> = [];
  afterEach(async () => {
    await Promise.all(stops.splice(0).map((stop) => stop()));
  });

  it("warns when another key answers at a configured address, and reports the key that answered", async () => {
    const observer = Identity.generate();
    const impostor = new Device({ identity: Identity.generate(), host: "127.0.0.1" });
    const port = await impostor.start();
    stops.push(() => impostor.stop());
    const expectedId = Identity.generate().deviceId;
    const transport = new StaticTransport({ identity: observer, entries: [{ address: `127.0.0.1:${port}`, expectedId, name: "press" }], probeIntervalMs: 100 });
    stops.push(() => transport.stop());
    const warned = waitFor<[Error]>(transport, "warning", () => true, 3_000);
    const found = waitFor<[{ id: string; name?: string; verified: boolean }]>(transport, "found", () => true, 3_000);
    await transport.start();
    const [[warning], [sighting]] = await Promise.all([warned, found]);
    should(warning.message).containEql(expectedId).and.containEql(impostor.id);
    should(sighting).containEql({ id: impostor.id, name: undefined, verified: true });
  });

  it("probes an address added while running at once, and a peer's replaced address no longer keeps it found", async () => {
    const peer = new Device({ identity: Identity.generate(), host: "127.0.0.1" });
    const port = await peer.start();
    stops.push(() => peer.stop());
    const transport = new StaticTransport({ identity: Identity.generate(), entries: [], probeIntervalMs: 60_000 });
    stops.push(() => transport.stop());
    await transport.start();
    const found = waitFor<[{ id: string; name?: string }]>(transport, "found", () => true, 3_000);
    transport.add({ address: `127.0.0.1:${port}`, expectedId: peer.id, name: "press" });
    should((await found)[0]).containEql({ id: peer.id, name: "press" });
    const lost = waitFor<[string]>(transport, "lost", () => true, 3_000);
    transport.add({ address: `127.0.0.1:${await freePort()}`, expectedId: peer.id, name: "press" });
    should((await lost)[0]).equal(peer.id);
  });

  it("refuses an address that is not host:port when it is built", () => {
    should(() => new StaticTransport({ identity: Identity.generate(), entries: [{ address: "gateway" }] })).throw(/not host:port/);
  });
});

describe("Device discovery", () => {
  const devices: Device[] = [];
  afterEach(async () => {
    await Promise.all(devices.splice(0).map((device) => device.stop()));
  });

  async function deviceOn(ether: MemoryEther, identity: Identity, peers: Array<{ id: string; name?: string }>): Promise<{ device: Device; transport: MemoryTransport }> {
    const port = await freePort();
    const transport = new MemoryTransport(ether, identity.deviceId, `127.0.0.1:${port}`);
    const device = new Device({ identity, host: "127.0.0.1", port, peers, discovery: { transports: [transport] } });
    devices.push(device);
    await device.start();
    return { device, transport };
  }

  it("sends by device id to a peer it only knows from discovery, without a configured address", async () => {
    const ether = new MemoryEther();
    const aId = Identity.generate();
    const bId = Identity.generate();
    const { device: b } = await deviceOn(ether, bId, [{ id: aId.deviceId, name: "a" }]);
    const { device: a } = await deviceOn(ether, aId, [{ id: bId.deviceId, name: "b" }]);
    should(a.peerTable.get(b.id)).containEql({ transport: "memory", trusted: true, name: "b" });
    const received = new Promise((resolve) => b.onMessage("hello", (message) => resolve(message.payload)));
    const ack = await a.send("b", "hello", { n: 1 });
    should(ack.receivers).equal(1);
    should(await received).eql({ n: 1 });
  });

  it("marks peers it was not configured with as untrusted, and lets a sender address them by full id", async () => {
    const ether = new MemoryEther();
    const { device: stranger } = await deviceOn(ether, Identity.generate(), []);
    const { device: a } = await deviceOn(ether, Identity.generate(), []);
    should(a.peerTable.get(stranger.id)).containEql({ trusted: false });
    // The stranger knows nobody, so it refuses: the request got as far as its ACL.
    await should(a.send(stranger.id, "hello", 1)).be.rejectedWith({ name: "WireError", code: "REFUSED" });
  });

  it("says a configured peer without an address is not in range", async () => {
    const ether = new MemoryEther();
    const absent = Identity.generate().deviceId;
    const { device: a } = await deviceOn(ether, Identity.generate(), [{ id: absent, name: "absent" }]);
    await should(a.send("absent", "hello", 1)).be.rejectedWith({ name: "WireError", code: "UNREACHABLE", message: /not in range/ });
  });

  it("probes configured addresses and reports the peer lost when it stops, then sends again when it is back", async () => {
    const bIdentity = Identity.generate();
    const aIdentity = Identity.generate();
    const port = await freePort();
    let b = new Device({ identity: bIdentity, host: "127.0.0.1", port, peers: [{ id: aIdentity.deviceId }] });
    await b.start();
    const a = new Device({ identity: aIdentity, peers: [{ id: bIdentity.deviceId, name: "b", address: `127.0.0.1:${port}` }], discovery: { staticProbeIntervalMs: 100 } });
    devices.push(a);
    const found = waitFor<[PeerInfo]>(a.peerTable, "found", () => true, 3_000);
    await a.start();
    should((await found)[0]).containEql({ id: bIdentity.deviceId, transport: "static", verified: true, trusted: true });
    const lost = waitFor(a.peerTable, "lost", () => true, 3_000);
    await b.stop();
    await lost;
    b = new Device({ identity: bIdentity, host: "127.0.0.1", port, peers: [{ id: aIdentity.deviceId }] });
    devices.push(b);
    b.onMessage("#", () => undefined);
    await b.start();
    await waitFor(a.peerTable, "found", () => true, 3_000);
    should((await a.send("b", "t", 1)).receivers).equal(1);
  });
});

describe("Device discovery configuration", () => {
  it("refuses LAN discovery on a device that listens only on loopback, saying what to change", () => {
    should(() => new Device({ identity: Identity.generate(), host: "127.0.0.1", discovery: { mdns: {} } })).throw(/listen on 0\.0\.0\.0/);
  });
});
