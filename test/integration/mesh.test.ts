import should from "should";
import { Device, DeviceDoc, Identity, MeshMessage, MeshSync, MeshSyncOptions } from "../../lib";
import { neighboursOf } from "../../lib/mesh/envelope";
import { withRev } from "../helpers/docs";
import { waitFor } from "../helpers/events";
import { freePort } from "../helpers/ports";
import { useDevices } from "../helpers/devices";


/**
 * Store-and-forward on loopback: each device knows only its neighbours' addresses, so documents reach
 * devices that never connect to each other only through the ones in between.
 */
describe("mesh: store-and-forward through relays", () => {
  const { devices, syncs, dirs } = useDevices();

  /** Devices named by letter, linked as `links` says ("ab" = a and b know each other's address). */
  async function topology(names: string, links: string[], sync: Partial<MeshSyncOptions> = {}, privately = false): Promise<Record<string, Device>> {
    const identities = Object.fromEntries([...names].map((name) => [name, Identity.generate()]));
    const ports = Object.fromEntries(await Promise.all([...names].map(async (name) => [name, await freePort()] as const)));
    const neighbours = (name: string): string[] => links.flatMap((link) => (link[0] === name ? [link[1]] : link[1] === name ? [link[0]] : []));
    const created: Record<string, Device> = {};
    for (const name of names) {
      created[name] = new Device({
        identity: identities[name],
        name,
        port: ports[name],
        storageDir: dirs.make(),
        peers: neighbours(name).map((other) => ({ id: identities[other].deviceId, name: other, address: `127.0.0.1:${ports[other]}` })),
        discovery: { staticProbeIntervalMs: 500, ...(privately ? { privateDiscovery: true } : {}) },
      });
      devices.push(created[name]);
    }
    await Promise.all(Object.values(created).map((device) => device.start()));
    for (const device of Object.values(created)) {
      const meshSync = device.meshSync({ databases: [], direction: "both", mesh: true, policy: { intervalMs: 0 }, ...sync });
      syncs.push(meshSync);
      meshSync.start();
    }
    return created;
  }

  async function knows(device: Device, other: Device): Promise<void> {
    if (device.mesh.has(`dev:${other.id}`)) return;
    await waitFor(device.mesh, "stored", () => device.mesh.has(`dev:${other.id}`), 10_000, `${other.id.slice(0, 8)}'s device document`);
  }

  function received(device: Device): MeshMessage[] {
    const messages: MeshMessage[] = [];
    device.mesh.onMessage((message) => messages.push(message));
    return messages;
  }

  it("carries a message and a 1 MB binary from A to C through B on a line, and C's ack purges B's copy", async () => {
    const { a, b, c } = await topology("abc", ["ab", "bc"]);
    const atC = received(c);
    await knows(a, c);
    const picture = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < picture.length; i++) picture[i] = (i * 7) & 0xff;

    const acked = waitFor<[{ id: string; by: string }]>(a.mesh, "acked", () => true, 20_000);
    const text = await a.mesh.send(c.id, { temperature: 21.5 }, { topic: "line-3/temp" });
    // By id prefix: the name "c" is only c's claim in its device document, which a never configured.
    await should(a.mesh.send("c", picture)).be.rejectedWith({ code: "UNKNOWN_PEER" });
    const binary = await a.mesh.send(c.id.slice(0, 10), picture, { topic: "camera", priority: 7 });
    should(binary.recipients).eql([c.id]);
    await waitFor(c.mesh, "stored", () => atC.length === 2, 20_000, "both messages at C");
    // The device's meshSync() sessions are what the sidebar's "last sync" shows.
    await waitFor(b, "synced", () => b.lastSyncs.has(a.id) && b.lastSyncs.has(c.id), 10_000, "B's sessions with A and C in its lastSyncs");
    const byTopic = Object.fromEntries(atC.map((message) => [message.topic, message]));
    should(byTopic["line-3/temp"].payload).eql({ temperature: 21.5 });
    should(byTopic["line-3/temp"].from).equal(a.id);
    should(Buffer.compare(byTopic.camera.payload as Buffer, picture)).equal(0);
    should((await acked)[0].by).equal(c.id);

    // Acks travel back: B drops its relayed copies.
    for (const id of [text.id, binary.id]) {
      if (b.mesh.has(id)) await waitFor(b.mesh, "stored", () => !b.mesh.has(id), 10_000, `B purging ${id}`);
    }
    should(atC.length).equal(2); // exactly once
  });

  it("keeps the body secret from the relay, and C refuses a copy whose body was altered on the way", async () => {
    const { a, b, c } = await topology("abc", ["ab", "bc"], { policy: { intervalMs: 60_000 } });
    void b;
    // No timer runs here (a minute between rounds): rounds by hand until C's key has reached A through B
    // (a round finds nobody until the first probes have brought the neighbours into range).
    const deadline = Date.now() + 20_000;
    while (!a.mesh.has(`dev:${c.id}`) && Date.now() < deadline) {
      syncs.forEach((sync) => sync.syncAll());
      await Promise.all(syncs.map((sync) => sync.settled()));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await knows(a, c);
    const sent = await a.mesh.send(c.id, "for C only");
    const doc = await a.systemDatabase!.get<Record<string, unknown>>(sent.id, { attachments: true, revs: true } as never);
    const { openMessage } = await import("../../lib/mesh/envelope");
    const attachments = doc._attachments as Record<string, { data: string }>;
    const body = Buffer.from(attachments.body.data, "base64");
    should(() => openMessage(b.identity, doc as never, body)).throw(/not addressed to/);
    should(body.includes(Buffer.from("for C only"))).be.false();

    body[body.length - 1] ^= 1;
    const altered = { ...doc, _attachments: { body: { ...attachments.body, data: body.toString("base64") } } };
    const rejected = waitFor<[{ id: string; reason: string }]>(c.mesh, "rejected", () => true, 5_000);
    const [result] = await c.mesh.ingest([altered as never]);
    should(result).containEql({ error: "forbidden", code: "invalid" });
    should((await rejected)[0].reason).match(/altered/);
    should(c.mesh.has(sent.id)).be.false();
  });

  /** Waits until every device holds every other's device document listing its current neighbours. */
  async function routesKnown(all: Device[]): Promise<void> {
    for (const device of all) for (const other of all) if (device !== other) await knows(device, other);
    const settled = async (): Promise<void> => Promise.all(syncs.map((sync) => sync.settled())).then(() => undefined);
    // Neighbour lists are written after the first sessions; a few more rounds spread them.
    for (let round = 0; round < 4; round++) {
      syncs.forEach((sync) => sync.syncAll());
      await settled();
    }
  }

  function storedIds(device: Device): Set<string> {
    const ids = new Set<string>();
    device.mesh.on("stored", ({ id }) => ids.add(id));
    return ids;
  }

  it("private identities: neighbour lists are sealed to the devices allowed to relay for each; directed routing still finds its path, and the others learn no links", async () => {
    const { a, b, c, d } = await topology("abcd", ["ab", "bc", "bd"], {}, true);
    await routesKnown([a, b, c, d]);
    if (a.mesh.nextHop(c.id) !== b.id) await waitFor(a.mesh, "stored", () => a.mesh.nextHop(c.id) === b.id, 10_000, "A's route to C");
    const atC = received(c);
    await a.mesh.send(c.id, "directed", { mode: "directed" });
    await waitFor(c.mesh, "stored", () => atC.length === 1, 10_000, "the directed message at C");
    // D holds A's device document (it floods), but may not read A's links: A does not know D.
    const aDoc = await d.systemDatabase!.get<DeviceDoc>(`dev:${a.id}`);
    should(aDoc.neighbours).eql({});
    should(aDoc.sealed?.readers.length).equal(2); // A itself and B
    should(JSON.stringify(aDoc)).not.containEql(b.id);
    should(neighboursOf(aDoc, d.identity)).be.undefined();
    should(Object.keys(neighboursOf(aDoc, b.identity) ?? {})).eql([b.id]);
    // B's links are readable by its known peers (A, C, D), each of which B allows to relay.
    const bDoc = await a.systemDatabase!.get<DeviceDoc>(`dev:${b.id}`);
    should(Object.keys(neighboursOf(bDoc, a.identity) ?? {}).sort()).eql([a.id, c.id, d.id].sort());
  });

  it("directed: on a Y, the side branch never receives a message for the other branch; flood: every device does", async () => {
    const { a, b, c, d } = await topology("abcd", ["ab", "bc", "bd"]);
    await routesKnown([a, b, c, d]);
    // The path must be known end to end before a directed message can take it (else it waits for the flood fallback).
    for (const [name, from, hop] of [["A", a, b], ["B", b, c]] as const) {
      if (from.mesh.nextHop(c.id) !== hop.id) await waitFor(from.mesh, "stored", () => from.mesh.nextHop(c.id) === hop.id, 10_000, `${name}'s route to C`);
    }
    const atC: MeshMessage[] = [];
    const stopListening = c.mesh.onMessage((message) => atC.push(message));
    const atD = storedIds(d);

    const directed = await a.mesh.send(c.id, "directed", { mode: "directed" });
    await waitFor(c.mesh, "stored", () => atC.length === 1, 10_000, "the directed message at C");
    await waitFor(a.mesh, "acked", ({ id }: { id: string }) => id === directed.id, 10_000, "C's ack at A").catch(() => undefined);
    should(atD.has(directed.id)).be.false();

    // C does not read (so does not acknowledge) for now: an ack would stop the flood before it reached D.
    stopListening();
    const flooded = await a.mesh.send(c.id, "flooded", { mode: "flood" });
    if (!atD.has(flooded.id)) await waitFor(d.mesh, "stored", () => atD.has(flooded.id), 10_000, "the flooded copy at D");
    c.mesh.onMessage((message) => atC.push(message));
    await waitFor(c.mesh, "stored", () => atC.length === 2, 10_000, "the flooded message at C");
    should(atC.map((m) => m.payload)).eql(["directed", "flooded"]);
  });

  it("after a relay stops mid-way and comes back, every message arrives exactly once", async () => {
    const { a, b, c } = await topology("abc", ["ab", "bc"]);
    const atC = received(c);
    await knows(a, c);
    const sent: string[] = [];
    for (let i = 0; i < 10; i++) sent.push((await a.mesh.send(c.id, { n: i })).id);
    // B goes away at once, whatever it was doing, and comes back with the same key and storage.
    const options = (b as unknown as { options: ConstructorParameters<typeof Device>[0] }).options;
    const bSync = syncs[1];
    await bSync.stop();
    await b.stop();
    for (let i = 10; i < 20; i++) sent.push((await a.mesh.send(c.id, { n: i })).id);
    const again = new Device(options);
    devices.push(again);
    await again.start();
    const againSync = new MeshSync(again, { databases: [], direction: "both", mesh: true, policy: { intervalMs: 0 } });
    syncs.push(againSync);
    againSync.start();
    await waitFor(c.mesh, "stored", () => atC.length >= 20, 30_000, "20 messages at C");
    const ns = atC.map((message) => (message.payload as { n: number }).n).sort((x, y) => x - y);
    should(ns).eql([...Array(20).keys()]);
  });

  it("pauses syncing when a flow says the battery is low and catches up on resume", async () => {
    const { a, c } = await topology("ac", ["ac"]);
    const atC = received(c);
    await knows(a, c);
    const [aSync] = syncs;
    aSync.pause();
    syncs[1].pause();
    await Promise.all(syncs.map((sync) => sync.settled()));
    const sent = await a.mesh.send(c.id, "while paused");
    // Every trigger a session could come from (a stored document, a round, a peer found) is ignored while paused.
    syncs.forEach((sync) => sync.syncAll());
    aSync.syncPeer(c.id);
    await Promise.all(syncs.map((sync) => sync.settled()));
    should(c.mesh.has(sent.id)).be.false();
    should(atC.length).equal(0);
    aSync.resume();
    await waitFor(c.mesh, "stored", () => atC.length === 1, 10_000, "the message after resume");
  });

  it("keeps to its quota: drops relayed messages of lower priority first and refuses what does not fit", async () => {
    const dir = dirs.make();
    const relay = new Device({ identity: Identity.generate(), storageDir: dir, mesh: { quota: { docs: 2 } } });
    devices.push(relay);
    await relay.start();
    const [sender, target] = [Identity.generate(), Identity.generate()];
    const { makeDeviceDoc, sealMessage } = await import("../../lib/mesh/envelope");
    const seal = (priority: number) => sealMessage(sender, { to: target.deviceId, recipients: [{ id: target.deviceId, key: target.publicKeySpki }], plaintext: Buffer.from("x"), mode: "flood", priority, ttlMs: 60_000 });
    await relay.mesh.ingest([withRev(makeDeviceDoc(target, {})) as never]);
    const low = seal(1);
    const mid = seal(3);
    const high = seal(8);
    const results = await relay.mesh.ingest([withRev(low), withRev(mid)] as never);
    should(results.every((result) => "ok" in result)).be.true();
    const [third] = await relay.mesh.ingest([withRev(high)] as never);
    should(third).have.property("ok", true);
    should(relay.mesh.has(low._id)).be.false(); // the lowest priority made room
    should(relay.mesh.has(mid._id)).be.true();
    const [refused] = await relay.mesh.ingest([withRev(seal(0))] as never);
    should(refused).containEql({ error: "forbidden", code: "full" });
    should((refused as { reason: string }).reason).match(/mesh store is full/);
    // Codes, not sentences, for the replicating side: an expired copy and a replayed device document.
    const [over] = await relay.mesh.ingest([withRev(seal(5))] as never, Date.now() + 120_000); // two minutes on, its 60 s are up
    should(over).containEql({ error: "forbidden", code: "expired" });
    const older = makeDeviceDoc(target, {}, undefined, Date.now() - 10_000);
    const [replayed] = await relay.mesh.ingest([withRev(older)] as never);
    should(replayed).containEql({ error: "forbidden", code: "replayed" });
  });

  it("goes through a cloud CouchDB-protocol server (pouchdb-server with credentials) when devices never meet", async function () {
    const { startCloud } = await import("../helpers/pouchdb-server");
    const cloud = await startCloud(["peer-mesh", "readings"]);
    try {
      const make = async (name: string): Promise<Device> => {
        const device = new Device({ identity: Identity.generate(), name, storageDir: dirs.make(), databases: ["readings"] });
        devices.push(device);
        await device.start();
        const sync = new MeshSync(device, { databases: ["readings"], direction: "both", mesh: true, policy: { intervalMs: 200 }, cloud: { url: cloud.url, auth: cloud.auth } });
        syncs.push(sync);
        return device;
      };
      const [a, c] = [await make("a"), await make("c")];
      const atC = received(c);
      await a.databases.open("readings").put({ _id: "r1", value: 7 });
      syncs.forEach((sync) => sync.start());
      await knows(a, c);
      const acked = waitFor(a.mesh, "acked", () => true, 15_000, "C's ack at A through the cloud");
      const sent = await a.mesh.send(c.id, "via the cloud");
      await waitFor(c.mesh, "stored", () => atC.length === 1, 15_000, "the message at C through the cloud");
      should(atC[0].payload).equal("via the cloud");

      // Once C's ack is back, the devices prune the delivered message from the server.
      await acked;
      const onCloud = async (id: string): Promise<number> => (await fetch(`${cloud.url}/peer-mesh/${encodeURIComponent(id)}`, { headers: { authorization: `Basic ${Buffer.from(`${cloud.auth.username}:${cloud.auth.password}`).toString("base64")}` } })).status;
      const deadline = Date.now() + 15_000;
      while ((await onCloud(sent.id)) !== 404 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
      should(await onCloud(sent.id)).equal(404);
      should(atC.length).equal(1); // the tombstone that follows is no second delivery
      const copy = await waitForDoc(c, "r1");
      should(copy.value).equal(7);

      // Wrong credentials are an error the flow sees, not a silent nothing.
      const denied = new MeshSync(a, { databases: [], direction: "both", mesh: true, policy: { intervalMs: 60_000 }, cloud: { url: cloud.url, auth: { username: "device", password: "wrong" } } });
      syncs.push(denied);
      const failure = waitFor<[Error, string]>(denied, "failed", () => true, 10_000);
      denied.syncPeer("cloud");
      should(String((await failure)[0])).match(/password|unauthorized/i);
    } finally {
      await cloud.stop();
    }
  });

  async function waitForDoc(device: Device, id: string): Promise<{ value: number }> {
    const db = device.databases.open("readings");
    const deadline = Date.now() + 15_000;
    for (;;) {
      const doc = await db.get<{ value: number }>(id).catch(() => undefined);
      if (doc) return doc;
      if (Date.now() > deadline) throw new Error(`${id} did not arrive`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  describe("hostile and broken relays", () => {
    it("a relay on the shortest path that drops what it is given: after the fallback time the message floods round it", async () => {
      // a–b–c is the short way; a–d–e–c the long one. B drops other devices' documents.
      const { a, b, c, d, e } = await topology("abcde", ["ab", "bc", "ad", "de", "ec"]);
      await routesKnown([a, b, c, d, e]);
      b.mesh.configure({ relay: false });
      a.mesh.configure({ fallbackMs: 1_500 });
      for (const device of [d, e]) device.mesh.configure({ fallbackMs: 1_500 });
      should(a.mesh.router.nextHop(a.id, c.id)).equal(b.id);
      const atC = received(c);
      const sentAt = Date.now();
      const sent = await a.mesh.send(c.id, "round the dropping relay", { mode: "directed" });
      // Rounds run on change and every 5 s: the first after the fallback carries it the long way.
      await waitFor(c.mesh, "stored", () => atC.some((message) => message.id === sent.id), 20_000, "the message at C the long way");
      should(Date.now() - sentAt).be.aboveOrEqual(1_500);
      should(atC.filter((message) => message.id === sent.id)).have.length(1);
    });

    it("a peer pushing a flood of forged documents gets each refused, stores nothing, and the relay keeps serving", async () => {
      const { a, b } = await topology("ab", ["ab"], { policy: { intervalMs: 60_000 } });
      const forged = Array.from({ length: 2_000 }, (_, i) => withRev({ _id: `msg:forged-${i}`, from: a.id, to: b.id, sig: "AAAA", _attachments: { body: { content_type: "application/octet-stream", data: Buffer.from(`junk ${i}`).toString("base64") } } }));
      const remote = a.databases.remote(b.id, "/mesh");
      try {
        const results = (await remote.bulkDocs({ docs: forged, new_edits: false } as never)) as Array<{ error?: string }>;
        should(results).have.length(2_000);
        should(results.filter((result) => result.error === "forbidden")).have.length(2_000);
      } finally {
        await remote.close();
      }
      should([...b.mesh.storedIds()].filter((id) => id.startsWith("msg:forged"))).eql([]);
      // Still serving: a real message from A goes through the same route.
      const atB = received(b);
      await waitFor(a.mesh, "stored", () => a.mesh.has(`dev:${b.id}`), 10_000, "B's device document at A").catch(() => undefined);
      syncs.forEach((sync) => sync.syncAll());
      await Promise.all(syncs.map((sync) => sync.settled()));
      await a.mesh.send(b.id, "after the flood");
      syncs.forEach((sync) => sync.syncAll());
      await waitFor(b.mesh, "stored", () => atB.length === 1, 10_000, "the real message at B");
    });

    it("a peer announcing thousands of made-up devices is held to the device document cap", async () => {
      const dir = dirs.make();
      const relay = new Device({ identity: Identity.generate(), storageDir: dir, mesh: { maxDevices: 50 } });
      devices.push(relay);
      await relay.start();
      if (!relay.mesh.has(`dev:${relay.id}`)) await waitFor(relay.mesh, "stored", () => relay.mesh.has(`dev:${relay.id}`), 10_000, "the relay's own device document");
      const { makeDeviceDoc } = await import("../../lib/mesh/envelope");
      // Each is validly signed by its own fresh key: cheap for an attacker to make, so only a cap contains them.
      const fakes = Array.from({ length: 200 }, () => withRev(makeDeviceDoc(Identity.generate(), {})));
      const results = await relay.mesh.ingest(fakes as never);
      const kept = results.filter((result) => "ok" in result).length;
      should(kept).equal(49); // 50 at most, the relay's own included
      should(results.filter((result) => "error" in result && result.code === "limit")).have.length(151);
      should([...relay.mesh.storedIds()].filter((id) => id.startsWith("dev:"))).have.length(50);
    });
  });
});
