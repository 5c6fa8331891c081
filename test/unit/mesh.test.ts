import should from "should";
import { Identity, Mesh } from "../../lib";
import { makeDeviceDoc, sealMessage } from "../../lib/mesh/envelope";
import { signGroup } from "../../lib/acl/signed-group";
import { serveCouch } from "../../lib/replication/couch-endpoint";
import { until } from "../../bench/embedded-node-red";
import { withRev } from "../helpers/docs";
import { delayLiveFeeds, recordChangesReads, useTempDatabases } from "../helpers/storage";

/** One Mesh on a temporary database, without a Device around it or a peer to sync with. */
describe("Mesh on its own", function () {
  this.timeout(20_000); // LevelDB opens
  const database = useTempDatabases();
  const meshes: Mesh[] = [];
  afterEach(async () => {
    await Promise.all(meshes.splice(0).map((mesh) => mesh.stop()));
  });

  async function mesh(groups: Record<string, string[]> = {}, revoked: Set<string> = new Set()): Promise<{ mesh: Mesh; identity: Identity }> {
    const identity = Identity.generate();
    const made = new Mesh({ identity, db: database(), groupMembers: (to) => (groups[to] ? { to, members: groups[to] } : undefined), sweepIntervalMs: 60_000, isRevoked: (id) => revoked.has(id) });
    meshes.push(made);
    await made.start();
    return { mesh: made, identity };
  }

  const seal = (sender: Identity, target: Identity, priority: number) =>
    sealMessage(sender, { to: target.deviceId, recipients: [{ id: target.deviceId, key: target.publicKeySpki }], plaintext: Buffer.from("x"), mode: "flood", priority, ttlMs: 60_000 });

  it("holds its own device document from the moment start() resolves, ready to hand to a neighbour (not once the changes feed catches up)", async () => {
    const { mesh: own, identity } = await mesh();
    should(own.has(`dev:${identity.deviceId}`)).be.true();
    should(own.selectFor(Identity.generate().deviceId, { maxDocs: 4 })).containEql(`dev:${identity.deviceId}`);
  });

  it("compacts its store once enough has changed: a removed message's body is gone from disk, not only hidden behind a tombstone", async () => {
    const identity = Identity.generate();
    const db = database();
    const own = new Mesh({ identity, db, groupMembers: () => undefined, sweepIntervalMs: 50, compactEveryChanges: 1 });
    meshes.push(own);
    await own.start();
    const target = Identity.generate();
    const message = sealMessage(Identity.generate(), { to: target.deviceId, recipients: [{ id: target.deviceId, key: target.publicKeySpki }], plaintext: Buffer.alloc(4096, 7), mode: "flood", priority: 4, ttlMs: 300 });
    const [stored] = await own.ingest([withRev(message)] as never);
    const firstRev = (stored as { rev: string }).rev;
    // Expired, swept (a tombstone), then compacted and its tombstone purged, in the same round.
    let purged = 0;
    while (purged < 1) purged += (await new Promise<{ purged: number }>((resolve) => own.once("compacted", resolve))).purged;
    should(own.has(message._id)).be.false();
    await should(db.get(message._id, { rev: firstRev, attachments: true })).be.rejectedWith({ status: 404 });
  });

  it("purges the tombstones of what it removed: nothing of a message stays on disk once it expired, and a copy offered again is refused by its ack, not by a tombstone", async () => {
    // Each removed message or ack kept a tombstone of about 210 bytes for good (after compaction): a
    // device relaying a message a second grew by tens of MB a day.
    const [aId, bId] = [Identity.generate(), Identity.generate()];
    const [aDb, bDb] = [database(), database()];
    const a = new Mesh({ identity: aId, db: aDb, groupMembers: () => undefined, sweepIntervalMs: 60_000 });
    const b = new Mesh({ identity: bId, db: bDb, groupMembers: () => undefined, sweepIntervalMs: 50, compactEveryChanges: 1 });
    meshes.push(a, b);
    await Promise.all([a.start(), b.start()]);
    await a.ingest([withRev(makeDeviceDoc(bId, {}))] as never);
    // A document of the system database that is not the mesh's keeps its tombstone.
    const other = await bDb.put({ _id: "peer:somebody", name: "x" });
    await bDb.remove({ _id: "peer:somebody", _rev: other.rev });
    const delivered: string[] = [];
    b.onMessage((message) => void delivered.push(message.id));
    const { id } = await a.send(bId.deviceId, { hello: 1 });
    const message = await aDb.get(id, { attachments: true, binary: true, revs: true } as never);
    should((await b.ingest([message] as never))[0]).have.property("ok", true);
    const expiring = sealMessage(Identity.generate(), { to: Identity.generate().deviceId, recipients: [{ id: Identity.generate().deviceId, key: Identity.generate().publicKeySpki }], plaintext: Buffer.from("x"), mode: "flood", priority: 4, ttlMs: 300 });
    should((await b.ingest([withRev(expiring)] as never))[0]).have.property("ok", true);
    let purged = 0;
    while (purged < 2) {
      purged += (await new Promise<{ purged: number }>((resolve) => b.once("compacted", resolve))).purged;
    }
    const history = await bDb.changes({ since: 0 });
    const deleted = history.results.filter((change) => change.deleted).map((change) => change.id);
    should(deleted).eql(["peer:somebody"]);
    await should(bDb.get(expiring._id)).be.rejectedWith({ status: 404, reason: "missing" });
    // The message B delivered and removed comes again: its ack, still held, refuses it.
    should((await b.ingest([message] as never))[0]).have.property("error");
    should(delivered).eql([id]);
  });

  it("purges the tombstones an earlier run left (a release that kept them), at its first sweep", async () => {
    const db = database();
    for (let i = 0; i < 30; i++) {
      const written = await db.put({ _id: `ack:old-${i}`, x: i });
      await db.remove({ _id: written.id, _rev: written.rev });
    }
    const own = new Mesh({ identity: Identity.generate(), db, groupMembers: () => undefined, sweepIntervalMs: 50, compactEveryChanges: 1_000_000 });
    meshes.push(own);
    const compacted = new Promise<{ purged: number }>((resolve) => own.once("compacted", resolve));
    await own.start();
    should((await compacted).purged).equal(30);
    should((await db.changes({ since: 0 })).results.filter((change) => change.deleted)).be.empty();
  });

  it("rewrites its device document for a new neighbour at once, for a known one once an hour, and then with every neighbour's latest time", async () => {
    // Every version floods to every device: a rewrite a minute per link kept a 100-device grid busy with
    // ~17,000 device documents a minute.
    const { mesh: own, identity } = await mesh();
    const db = own.database;
    const version = async (): Promise<{ generation: number; neighbours: Record<string, number> }> => {
      const doc = await db.get<{ neighbours: Record<string, number> }>(`dev:${identity.deviceId}`);
      return { generation: Number(doc._rev.split("-")[0]), neighbours: doc.neighbours };
    };
    const [p1, p2] = [Identity.generate().deviceId, Identity.generate().deviceId];
    const t0 = Date.now();
    const start = (await version()).generation;
    await own.noteNeighbour(p1, t0);
    await own.noteNeighbour(p2, t0 + 1_000);
    should((await version()).generation).equal(start + 2); // each new neighbour at once
    await own.noteNeighbour(p1, t0 + 120_000);
    await own.noteNeighbour(p2, t0 + 1_800_000);
    should((await version()).generation).equal(start + 2); // known links: not yet
    await own.noteNeighbour(p1, t0 + 3_600_000);
    const refreshed = await version();
    should(refreshed.generation).equal(start + 3);
    should(refreshed.neighbours).eql({ [p1]: t0 + 3_600_000, [p2]: t0 + 1_800_000 });
    await own.noteNeighbour(p2, t0 + 3_600_000 + 60_000);
    should((await version()).generation).equal(start + 3); // p2's time went out with p1's refresh
  });

  it("keeps working past its ack quota: the oldest acks of messages it no longer holds make room, never its own receipt of a message still held", async () => {
    // An ack lives as long as its message could (a day by default), so a device that sends one mesh
    // message every 8.6 s or faster fills 10,000 acks in a day: new acks were then refused, its sent
    // messages never learnt they had arrived, and its store filled with them.
    const quota = { docs: 5 };
    const [aId, bId] = [Identity.generate(), Identity.generate()];
    const [aDb, bDb] = [database(), database()];
    const a = new Mesh({ identity: aId, db: aDb, groupMembers: () => undefined, sweepIntervalMs: 60_000, quota });
    const b = new Mesh({ identity: bId, db: bDb, groupMembers: () => undefined, sweepIntervalMs: 60_000, quota });
    meshes.push(a, b);
    await Promise.all([a.start(), b.start()]);
    await a.ingest([withRev(makeDeviceDoc(bId, {}))] as never);
    const delivered: string[] = [];
    let onDelivery: () => void = () => undefined;
    b.onMessage((message) => {
      delivered.push(message.id);
      onDelivery();
    });
    const acked: string[] = [];
    a.on("acked", ({ id }) => acked.push(id));
    const SENT = 3 * quota.docs;
    const copies: object[] = [];
    for (let i = 0; i < SENT; i++) {
      const { id } = await a.send(bId.deviceId, { i });
      const message = await aDb.get(id, { attachments: true, binary: true, revs: true } as never);
      copies.push(message);
      const arrived = new Promise<void>((resolve) => (onDelivery = resolve));
      should((await b.ingest([message] as never))[0]).have.property("ok", true);
      await arrived; // B wrote its ack before handing the message over
      const ack = await bDb.get(`ack:${id.slice("msg:".length)}:${bId.deviceId}`, { revs: true });
      const [result] = await a.ingest([ack] as never);
      should("ok" in result).be.true(`message ${i}: A refused B's ack: ${JSON.stringify(result)}`);
    }
    const sent = copies.map((copy) => (copy as { _id: string })._id);
    should(acked).eql(sent);
    should(delivered).eql(sent);
    should(a.storedMessages).equal(0); // every sent message learnt it arrived, and went
    should(a.storedAcks).be.belowOrEqual(quota.docs);
    should(b.storedAcks).be.belowOrEqual(quota.docs);
    // A late copy of a message whose receipt B still keeps is refused, not delivered again.
    should((await b.ingest([copies[SENT - 1]] as never))[0]).have.property("error");
    should(delivered).have.length(SENT);
    // B is still removing the last message (acked by all): stopped here, before the databases close under it.
    await Promise.all([a.stop(), b.stop()]);
  });

  it("announces a group document it stores (the event a sync with interval 0 waits for), each new version", async () => {
    const { mesh: relay } = await mesh();
    const owner = Identity.generate();
    const stored: string[] = [];
    relay.on("stored", ({ id }) => stored.push(id));
    for (const version of [1, 2]) {
      const group = signGroup(owner, "fleet", version === 1 ? [Identity.generate().deviceId] : [], version);
      const announced = new Promise<void>((resolve) => relay.once("stored", () => resolve()));
      should((await relay.ingest([withRev(group)] as never))[0]).have.property("ok", true);
      await announced;
    }
    should(stored.filter((id) => id.startsWith("group:")).length).be.aboveOrEqual(2);
  });

  it("offers a document again when it changed while the session that sent it ran (marks the revision sent, not the one held at the end)", async () => {
    const { mesh: owner } = await mesh();
    const ownerIdentity = Identity.generate();
    const neighbour = Identity.generate().deviceId;
    const groupId = `group:${ownerIdentity.deviceId}:fleet`;
    await owner.ingest([withRev(signGroup(ownerIdentity, "fleet", [neighbour], 1))] as never);
    const ids = owner.selectFor(neighbour);
    should(ids).containEql(groupId);
    const sent = owner.revisionsOf(ids);
    // The session runs; meanwhile the owner takes the member out (version 2).
    const v2 = { ...withRev(signGroup(ownerIdentity, "fleet", [], 2)), _rev: "2-fedcba9876543210fedcba9876543210", _revisions: { start: 2, ids: ["fedcba9876543210fedcba9876543210", "0123456789abcdef0123456789abcdef"] } };
    should((await owner.ingest([v2] as never))[0]).have.property("ok", true);
    owner.markPresent(neighbour, ids, sent);
    should(owner.selectFor(neighbour)).containEql(groupId);
  });

  it("waits for a directed message's ack as long as its known path takes there and back (a sync interval a hop) before flooding it", async () => {
    // sender – relay – next – far – target; `aside` is the relay's other neighbour, on no path.
    const { mesh: relay } = await mesh();
    const [sender, next, far, target, aside] = Array.from({ length: 5 }, () => Identity.generate());
    const t0 = Date.now();
    const links: Array<[Identity, Identity[]]> = [[sender, []], [next, [far]], [far, [next, target]], [target, [far]], [aside, []]];
    await relay.ingest(links.map(([device, neighbours]) => withRev(makeDeviceDoc(device, Object.fromEntries(neighbours.map((n) => [n.deviceId, t0]))))) as never);
    for (const neighbour of [sender, next, aside]) await relay.noteNeighbour(neighbour.deviceId, t0);
    should(relay.router.hops(sender.deviceId, target.deviceId, t0)).equal(4);
    const message = sealMessage(sender, { to: target.deviceId, recipients: [{ id: target.deviceId, key: target.publicKeySpki }], plaintext: Buffer.from("x"), mode: "directed", priority: 4, ttlMs: 3_600_000, now: t0 });
    should((await relay.ingest([withRev(message)] as never))[0]).have.property("ok");
    const offered = (neighbour: Identity, at: number): boolean => relay.selectFor(neighbour.deviceId, {}, at).includes(message._id);
    should(offered(next, t0 + 1_000)).be.true();
    should(offered(aside, t0 + 1_000)).be.false();
    // Syncing every 30 s, 4 hops there and 4 back take up to 4 minutes: not flooded after the bare 60 s.
    relay.configure({ fallbackMs: 60_000, hopMs: 30_000 });
    should(offered(aside, t0 + 61_000)).be.false();
    should(offered(aside, t0 + 60_000 + 240_000 + 1_000)).be.true();
    // Syncing on change, hops take no time to count: the fallback alone.
    relay.configure({ hopMs: 0 });
    should(offered(aside, t0 + 61_000)).be.true();
  });

  it("answers a neighbour's changes read from the oldest document routed to it, not from sequence 0, with the same answer", async () => {
    const db = database();
    // Its changes feed a little behind, as under load (where this test once saw the read start two below).
    delayLiveFeeds(db, 100);
    const relay = new Mesh({ identity: Identity.generate(), db, groupMembers: () => undefined, sweepIntervalMs: 60_000 });
    meshes.push(relay);
    await relay.start();
    const [sender, target] = [Identity.generate(), Identity.generate()];
    should((await relay.ingest([withRev(makeDeviceDoc(target, {}))] as never)).filter((result) => "error" in result)).eql([]);
    const messages = Array.from({ length: 40 }, () => seal(sender, target, 5));
    // One at a time, so that the last is also the newest in the store (a batch is stored in id order).
    for (const message of messages) should((await relay.ingest([withRev(message)] as never)).filter((result) => "error" in result)).eql([]);
    const last = messages[messages.length - 1]._id;
    const lastSeq = Number((await db.changes({ since: 0, doc_ids: [last] })).results[0].seq);
    // The store's changes feed brings each document's sequence a moment after the write (no event says so).
    // Waited for exactly: until then the floor is the feed's position, lower and still safe. (This waited
    // for a floor above 0, which the feed's position gives at once: a feed two changes behind under load
    // made the read start at 40, and this test fail twice, before the floor for unseen documents was
    // understood to be the reason.)
    await until(() => relay.sequenceFloor([last]) === lastSeq - 1, "the changes feed to bring the newest message", 5_000);
    // The neighbour holds everything but the newest message (it was there for the earlier sessions).
    relay.markPresent(target.deviceId, relay.selectFor(target.deviceId).filter((id) => id !== last));
    should(relay.selectFor(target.deviceId)).eql([last]);
    const reads = recordChangesReads(db);
    let reply: { status: number; json: { results: Array<{ id: string }>; last_seq: number } };
    try {
      reply = (await serveCouch(
        db,
        { method: "GET", segments: ["_changes"], query: new URLSearchParams("since=0&style=all_docs"), readBody: async () => Buffer.alloc(0), signal: new AbortController().signal },
        { read: true, write: false },
        { name: "mesh", maxBodyBytes: 1 << 20, visibleIds: () => relay.selectFor(target.deviceId), sequenceFloor: (ids) => relay.sequenceFloor(ids) },
      )) as typeof reply;
    } finally {
      reads.restore();
    }
    should(reply.json.results.map((change) => change.id)).eql([last]);
    const fromZero = await db.changes({ since: 0, doc_ids: [last], style: "all_docs", return_docs: true });
    should(fromZero.results.map((change) => change.id)).eql([last]);
    should(reply.json.last_seq).equal(fromZero.last_seq);
    // One read, starting just below the newest message's write: past the 39 messages written before it
    // (and the two device documents).
    should(Number(fromZero.results[0].seq)).equal(lastSeq);
    should(reads.since).eql([lastSeq - 1]);
    should(reads.since[0]).be.aboveOrEqual(41);
  });

  it("starts a read for a document its changes feed has not brought yet at the feed's position, and for one held at start at 0", async () => {
    const identity = Identity.generate();
    const db = database();
    const [sender, target] = [Identity.generate(), Identity.generate()];
    const held = seal(sender, target, 5);
    await db.bulkDocs([withRev(held)] as never, { new_edits: false });
    const own = new Mesh({ identity, db, groupMembers: () => undefined, sweepIntervalMs: 60_000 });
    meshes.push(own);
    await own.start();
    should(own.sequenceFloor([])).equal(0);
    // Stored before start: its sequence was never reported.
    should(own.sequenceFloor([held._id])).equal(0);
    // Written after everything the feed has brought: the feed's position is below it (the old answer was 0).
    const feedAt = (await db.info()).update_seq as number;
    // A whole message (the mesh's feed reads what it brings: a bare { _id } made it throw inside PouchDB's listener).
    const message = seal(sender, target, 5);
    const fresh = message._id;
    should(own.sequenceFloor([fresh])).equal(feedAt);
    await db.bulkDocs([withRev(message)] as never, { new_edits: false });
    const found = await db.changes({ since: own.sequenceFloor([fresh]), doc_ids: [fresh], return_docs: true });
    should(found.results.map((change) => change.id)).eql([fresh]);
  });

  it("hands a neighbour the highest priority first, within the session's limit, and not again once it holds them", async () => {
    const { mesh: relay } = await mesh();
    const [sender, target, neighbour] = [Identity.generate(), Identity.generate(), Identity.generate().deviceId];
    await relay.ingest([withRev(makeDeviceDoc(target, {}))] as never);
    const messages = [1, 7, 3, 9].map((priority) => seal(sender, target, priority));
    const results = await relay.ingest(messages.map(withRev) as never);
    should(results.every((result) => "ok" in result)).be.true();
    const byPriority = (ids: string[]) => ids.filter((id) => id.startsWith("msg:")).map((id) => messages.find((m) => m._id === id)!.priority);
    // Device documents (the target's and the relay's own) come before messages, within the same 4.
    const first = relay.selectFor(neighbour, { maxDocs: 4 });
    should(first.filter((id) => id.startsWith("dev:"))).have.length(2);
    should(byPriority(first)).eql([9, 7]);
    relay.markPresent(neighbour, first);
    const second = relay.selectFor(neighbour, { maxDocs: 4 });
    should(byPriority(second)).eql([3, 1]);
    should(second.filter((id) => first.includes(id))).eql([]);
  });

  it("ignores a replicated deletion and refuses what is not a mesh document, each with its code", async () => {
    const { mesh: relay } = await mesh();
    const [sender, target] = [Identity.generate(), Identity.generate()];
    const message = seal(sender, target, 4);
    await relay.ingest([withRev(message)] as never);
    const [deletion] = await relay.ingest([withRev({ _id: message._id, _deleted: true })] as never);
    should(deletion).have.property("ok", true); // answered, not applied: messages end by ack or expiry
    should(relay.has(message._id)).be.true();
    const [stranger] = await relay.ingest([withRev({ _id: "readings-1", value: 3 })] as never);
    should(stranger).containEql({ error: "forbidden", code: "invalid" });
    should(relay.has("readings-1")).be.false();
  });

  it("with a key revoked: takes nothing it signed, hands a flow nothing it sent before, and seals nothing to it", async () => {
    const revoked = new Set<string>();
    const [thief, honest] = [Identity.generate(), Identity.generate()];
    const { mesh: own, identity: self } = await mesh({ "group:line": [thief.deviceId, honest.deviceId] }, revoked);
    await own.ingest([withRev(makeDeviceDoc(thief, {})), withRev(makeDeviceDoc(honest, {}))] as never);
    const before = seal(thief, self, 4);
    await own.ingest([withRev(before)] as never);
    revoked.add(thief.deviceId);
    const delivered: string[] = [];
    const rejected: string[] = [];
    own.on("rejected", ({ reason }) => rejected.push(reason));
    own.onMessage((message) => delivered.push(message.id));
    const after = seal(thief, self, 4);
    const [refusal] = await own.ingest([withRev(after)] as never);
    should(refusal).containEql({ error: "forbidden", code: "revoked" });
    should(own.has(after._id)).be.false();
    const [deviceDoc] = await own.ingest([withRev(makeDeviceDoc(thief, {}, undefined, Date.now() + 1_000))] as never);
    should(deviceDoc).containEql({ code: "revoked" });
    await new Promise((resolve) => setTimeout(resolve, 200));
    should(delivered).eql([]);
    should(rejected.join("\n")).match(/whose key is revoked/);
    await should(own.send(thief.deviceId, "secret")).be.rejectedWith({ code: "REFUSED", message: /revoked: nothing is sealed to it/ });
    should((await own.send("group:line", "to the line")).recipients).eql([honest.deviceId]);
  });

  it("addresses a group by its members other than this device, and refuses one with nobody else in it", async () => {
    const other = Identity.generate();
    const { mesh: own } = await mesh({ "group:family": [] });
    await should(own.send("group:family", "hi")).be.rejectedWith({ code: "UNKNOWN_PEER" });
    const { mesh: withMembers, identity: self } = await mesh({ "group:line": [other.deviceId] });
    await withMembers.ingest([withRev(makeDeviceDoc(other, {}))] as never);
    const sent = await withMembers.send("group:line", { on: true });
    should(sent.recipients).eql([other.deviceId]);
    should(sent.recipients).not.containEql(self.deviceId);
  });
});
