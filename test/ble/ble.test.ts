import { createHash } from "node:crypto";
import should from "should";
import { BleTransport, Device, Identity, PeerInfo } from "../../lib";
import { byteSource } from "../helpers/devices";
import { waitFor } from "../helpers/events";
import { TempDirs } from "../helpers/storage";
import { SimRadio } from "./sim-radio";
import { transportCompliance } from "../transport-compliance";

/**
 * The BLE transport over a simulated radio: noble and bleno run their own code on simulated bindings, and
 * the wire (mutual TLS, HTTP/2) runs through the GATT pipe as over TCP. No device here has a TCP route to
 * another: no addresses are configured and static probing is off, so whatever arrives came over BLE.
 */
describe("Bluetooth LE transport (simulated radio under noble and bleno)", function () {
  this.timeout(60_000);
  let radio: SimRadio;
  const devices: Device[] = [];
  const dirs = new TempDirs();
  afterEach(async () => {
    await Promise.all(devices.splice(0).map((device) => device.stop()));
    radio?.shutdown();
    dirs.removeAll();
  });

  function bleDevices(count: number, options: { know?: boolean; storage?: boolean; expireMs?: number; privateEpochMs?: number } = {}): Device[] {
    const identities = Array.from({ length: count }, () => Identity.generate());
    const created = identities.map(
      (identity, i) =>
        new Device({
          identity,
          name: `ble-${i}`,
          peers: options.know === false ? [] : identities.filter((other) => other !== identity).map((other) => ({ id: other.deviceId })),
          storageDir: options.storage ? dirs.make() : undefined,
          databases: options.storage ? ["readings"] : undefined,
          discovery: { staticProbeIntervalMs: 0, ble: { bindings: radio.device(`sim-${i}`), expireMs: options.expireMs ?? 2_000 }, ...(options.privateEpochMs ? { privateDiscovery: { epochMs: options.privateEpochMs } } : {}) },
        }),
    );
    devices.push(...created);
    return created;
  }

  async function inRange(device: Device, other: Device): Promise<PeerInfo> {
    const current = device.peerTable.get(other.id);
    if (current) return current;
    const [peer] = await waitFor<[PeerInfo]>(device.peerTable, "found", (found) => found.id === other.id, 20_000, `${other.id.slice(0, 8)} over BLE`);
    return peer;
  }

  it("discovers 3 devices: each finds the other two by their full ids, as one peer on the ble transport", async () => {
    radio = new SimRadio({ mtu: 247, bytesPerSecond: 200_000 });
    const trio = bleDevices(3, { know: false });
    await Promise.all(trio.map((device) => device.start()));
    for (const device of trio) {
      for (const other of trio.filter((candidate) => candidate !== device)) {
        const peer = await inRange(device, other);
        should(peer).containEql({ id: other.id, transport: "ble", transports: ["ble"], verified: false, trusted: false });
      }
    }
  });

  it("private discovery: known devices find each other by beacons; a stranger sees names that change every epoch and recognises nobody", async () => {
    radio = new SimRadio({ mtu: 247, bytesPerSecond: 200_000 });
    const epochMs = 1_500;
    const pair = bleDevices(2, { privateEpochMs: epochMs, expireMs: 3_000 });
    // A stranger: a private device too, knowing nobody; and a bare scanner recording every advertised name.
    const stranger = new Device({ identity: Identity.generate(), discovery: { staticProbeIntervalMs: 0, ble: { bindings: radio.device("sim-stranger") }, privateDiscovery: { epochMs } } });
    devices.push(stranger);
    const scanner = radio.nobleBindings("sim-scanner");
    const names: Array<{ at: number; name: string }> = [];
    scanner.on("discover", (...args: unknown[]) => names.push({ at: Date.now(), name: String((args[4] as { localName?: string }).localName) }));
    scanner.startScanning([], true);
    await Promise.all([...pair, stranger].map((device) => device.start()));
    const [a, b] = pair;
    should(await inRange(a, b)).containEql({ id: b.id, transport: "ble", verified: false });
    should(await inRange(b, a)).containEql({ id: a.id, transport: "ble" });
    await new Promise((resolve) => setTimeout(resolve, epochMs * 2.5));
    should(stranger.peerTable.list()).eql([]);
    // Still in range through the renames: found, never lost.
    should(a.peerTable.get(b.id)).be.ok();
    scanner.stopScanning();
    const heard = [...new Set(names.map((entry) => entry.name))];
    for (const device of [...pair, stranger]) should(heard.some((name) => name.includes(device.id.slice(0, 6)))).be.false();
    // Each of the three advertised a new name every epoch, none for longer than an epoch and a tick.
    should(heard.length).be.aboveOrEqual(3 * 3);
    for (const name of heard) {
      const times = names.filter((entry) => entry.name === name).map((entry) => entry.at);
      should(Math.max(...times) - Math.min(...times)).be.belowOrEqual(epochMs + 1_000);
    }
    // A message still goes through: the beacons led to the right device, and TLS proved it.
    b.onMessage("#", () => undefined);
    should((await a.send(b.id, "hello", 1)).receivers).equal(1);
  });

  it("private discovery: devices that become peers while in range find each other at once, not at the next epoch", async () => {
    radio = new SimRadio({ mtu: 247, bytesPerSecond: 200_000 });
    // An epoch far longer than the test: only the change of peers can make them read each other again.
    const [a, b] = bleDevices(2, { know: false, privateEpochMs: 10 * 60_000, expireMs: 3_000 });
    const reads = new Map<string, number>();
    for (const central of ["sim-0", "sim-1"]) radio.central(central)!.on("read", () => reads.set(central, (reads.get(central) ?? 0) + 1));
    await Promise.all([a, b].map((device) => device.start()));
    // Each has read the other's beacons once and recognised nobody.
    const deadline = Date.now() + 10_000;
    while (!((reads.get("sim-0") ?? 0) >= 1 && (reads.get("sim-1") ?? 0) >= 1) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    should(a.peerTable.list()).eql([]);
    should(b.peerTable.list()).eql([]);
    const before = reads.get("sim-0");
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    should(reads.get("sim-0")).equal(before); // a stranger in range is not read over and over
    a.addKnownPeer({ id: b.id });
    b.addKnownPeer({ id: a.id });
    should(await inRange(a, b)).containEql({ id: b.id, transport: "ble" });
    should(await inRange(b, a)).containEql({ id: a.id, transport: "ble" });
  });

  it("carries a message and a 1 MB stream over BLE through mutual TLS, bytes intact", async () => {
    radio = new SimRadio({ mtu: 517, bytesPerSecond: 500_000 });
    const [a, b] = bleDevices(2);
    await Promise.all([a.start(), b.start()]);
    const messages: unknown[] = [];
    b.onMessage("sensors/#", (message) => void messages.push({ from: message.from.id, payload: message.payload }));
    const hash = createHash("sha256");
    let bytes = 0;
    b.onStream("camera", async (stream) => {
      for await (const chunk of stream.body) {
        hash.update(chunk as Buffer);
        bytes += (chunk as Buffer).length;
      }
    });
    await inRange(a, b);
    const ack = await a.send(b.id, "sensors/press-7", { celsius: 81.5 });
    should(ack.receivers).equal(1);
    should(messages).eql([{ from: a.id, payload: { celsius: 81.5 } }]);

    const total = 1024 * 1024;
    const expected = createHash("sha256");
    for await (const chunk of byteSource(total, 16 * 1024, (i) => i * 13)) expected.update(chunk as Buffer);
    const started = Date.now();
    const streamed = await a.sendStream(b.id, "camera", byteSource(total, 16 * 1024, (i) => i * 13));
    const seconds = (Date.now() - started) / 1000;
    should(streamed.bytes).equal(total);
    should(bytes).equal(total);
    should(hash.digest("hex")).equal(expected.digest("hex"));
    console.log(`      1 MB over the simulated link (500 kB/s): ${seconds.toFixed(1)} s, ${(total / 1000 / seconds).toFixed(0)} kB/s`);
  });

  it("a message sent the moment a peer is found goes through: the late disconnect of the link that read its id does not drop the new one", async () => {
    // The host hears of the id read's disconnect 30 ms on, after a new connection (7.5 ms) is up.
    radio = new SimRadio({ mtu: 247, bytesPerSecond: 500_000, disconnectDelayMs: 30 });
    const [a, b] = bleDevices(2);
    b.onMessage("hello", () => undefined);
    await Promise.all([a.start(), b.start()]);
    const acked = new Promise<number>((resolve, reject) => {
      a.peerTable.on("found", (peer) => {
        if (peer.id === b.id) a.send(b.id, "hello", 1).then((ack) => resolve(ack.receivers), reject);
      });
    });
    should(await acked).equal(1);
  });

  it("keeps bytes intact on a lossy link (20 % of packets sent again a connection interval later), only slower", async () => {
    radio = new SimRadio({ mtu: 247, bytesPerSecond: 500_000, lossRate: 0.2 });
    const [a, b] = bleDevices(2);
    await Promise.all([a.start(), b.start()]);
    const hash = createHash("sha256");
    b.onStream("camera", async (stream) => {
      for await (const chunk of stream.body) hash.update(chunk as Buffer);
    });
    await inRange(a, b);
    const expected = createHash("sha256");
    for await (const chunk of byteSource(256 * 1024, 16 * 1024, (i) => i * 7)) expected.update(chunk as Buffer);
    should((await a.sendStream(b.id, "camera", byteSource(256 * 1024, 16 * 1024, (i) => i * 7))).bytes).equal(256 * 1024);
    should(hash.digest("hex")).equal(expected.digest("hex"));
  });

  it("replicates a database over BLE", async () => {
    radio = new SimRadio({ mtu: 247, bytesPerSecond: 500_000 });
    const [a, b] = bleDevices(2, { storage: true });
    await Promise.all([a.start(), b.start()]);
    await a.databases.open("readings").bulkDocs(Array.from({ length: 50 }, (_, i) => ({ _id: `r-${i}`, celsius: 20 + i / 10 })));
    await inRange(a, b);
    const report = await a.databases.replicate(b.id, "readings", "push");
    should(report.docsWritten).equal(50);
    should((await b.databases.open("readings").info()).doc_count).equal(50);
  });

  it("reports a link that drops mid-stream as an error at the sender, and the receiving flow sees the stream fail", async () => {
    radio = new SimRadio({ mtu: 247, bytesPerSecond: 200_000 });
    const [a, b] = bleDevices(2);
    await Promise.all([a.start(), b.start()]);
    let received = 0;
    const receiverFailed = new Promise<Error>((resolve) =>
      b.onStream("camera", async (stream) => {
        try {
          for await (const chunk of stream.body) received += (chunk as Buffer).length;
        } catch (err) {
          resolve(err as Error);
          throw err;
        }
      }),
    );
    await inRange(a, b);
    const sending = a.sendStream(b.id, "camera", byteSource(8 * 1024 * 1024));
    sending.catch(() => undefined);
    while (received < 64 * 1024) await new Promise((resolve) => setTimeout(resolve, 20));
    radio.dropLinks(`sim-1`);
    const err = await sending.then(() => undefined, (failure: Error & { code?: string }) => failure);
    should.exist(err, "a stream cut off mid-way must fail");
    should(["STREAM_ABORTED", "UNREACHABLE"]).containEql(err!.code);
    should((await receiverFailed).message).be.a.String();
    // The link comes back on the next dial.
    b.onMessage("after", () => undefined);
    should((await a.send(b.id, "after", 1)).receivers).equal(1);
  });

  it("loses a device whose advertisements stop, after the expiry", async () => {
    radio = new SimRadio();
    const [a, , c] = bleDevices(3, { expireMs: 1_000 });
    await Promise.all(devices.map((device) => device.start()));
    await inRange(a, c);
    const silencedAt = Date.now();
    radio.silence("sim-2");
    await waitFor<[PeerInfo]>(a.peerTable, "lost", (peer) => peer.id === c.id, 10_000, "C lost");
    const after = Date.now() - silencedAt;
    should(after).be.aboveOrEqual(1_000);
    console.log(`      lost ${after} ms after the last advertisement (expiry 1000 ms)`);
  });

  it("is one peer with two transports when seen over BLE and at a static address", async () => {
    radio = new SimRadio();
    const bIdentity = Identity.generate();
    const b = new Device({ identity: bIdentity, discovery: { staticProbeIntervalMs: 0, ble: { bindings: radio.device("sim-b") } } });
    devices.push(b);
    const port = await b.start();
    const a = new Device({ identity: Identity.generate(), peers: [{ id: b.id, address: `127.0.0.1:${port}` }], discovery: { staticProbeIntervalMs: 200, ble: { bindings: radio.device("sim-a") } } });
    devices.push(a);
    await a.start();
    const onBoth = (): boolean => a.peerTable.get(b.id)?.transports.length === 2;
    if (!onBoth()) await waitFor(a.peerTable, "changed", onBoth, 20_000, "B on both transports");
    const peer = a.peerTable.get(b.id)!;
    should(peer.transports).eql(["static", "ble"]);
    should(peer.transport).equal("static"); // the better-ranked route carries the wire
  });

  it("reports BLE unavailable where noble and bleno cannot reach an adapter, and the device works on", async function () {
    let loads = true;
    try {
      require("@abandonware/noble");
    } catch {
      loads = false;
    }
    if (loads) {
      console.log("      skipped: noble loads here (a Bluetooth adapter is present)");
      return this.skip();
    }
    const transport = new BleTransport({ deviceId: Identity.generate().deviceId });
    const warned = waitFor<[Error]>(transport, "warning", () => true, 5_000);
    await transport.start();
    should((await warned)[0].message).match(/Bluetooth LE is unavailable/);
    should(transport.unavailable).be.a.String();
    await transport.stop();
  });
});

transportCompliance("ble (simulated radio)", async () => {
  const radio = new SimRadio();
  const observerIdentity = Identity.generate();
  const subject = Identity.generate();
  let device: Device | undefined;
  const stopSubject = async (): Promise<void> => {
    await device?.stop();
    device = undefined;
  };
  return {
    observer: new BleTransport({ deviceId: observerIdentity.deviceId, bindings: radio.device("sim-observer"), expireMs: 1_000 }),
    observerIdentity,
    subjectId: subject.deviceId,
    async startSubject() {
      device = new Device({ identity: subject, discovery: { staticProbeIntervalMs: 0, ble: { bindings: radio.device("sim-subject") } } });
      await device.start();
    },
    stopSubject,
    foundWithinMs: 3_000,
    lostWithinMs: 3_000,
    async dispose() {
      await stopSubject();
      radio.shutdown();
    },
  };
});
