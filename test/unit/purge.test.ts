import crypto from "node:crypto";
import path from "node:path";
import should from "should";
import PouchDB from "pouchdb-node";
import { openDatabase } from "../../lib";
import { compactStore, databaseBytes, reclaimSpace } from "../../lib/storage/database";
import { compactWithReadsHeld, purgeDocuments, readsWait } from "../../lib/storage/purge";
import { TempDirs, useTempDatabases } from "../helpers/storage";

describe("purge (PouchDB's LevelDB adapter)", function () {
  this.timeout(60_000);
  const database = useTempDatabases();
  const dirs = new TempDirs();
  afterEach(() => dirs.removeAll());

  it("with onlyDeleted, purges tombstones only: a live document, and a tombstone a replication brought back to life, stay", async () => {
    const db = database();
    const [gone, live, revived] = await db.bulkDocs([{ _id: "gone" }, { _id: "live" }, { _id: "revived" }]);
    await db.remove({ _id: "gone", _rev: (gone as { rev: string }).rev });
    await db.remove({ _id: "revived", _rev: (revived as { rev: string }).rev });
    // A replicated copy on another branch: the document is live again, its winner no longer the tombstone.
    await db.bulkDocs([{ _id: "revived", _rev: "1-0123456789abcdef0123456789abcdef", n: 2 }], { new_edits: false });
    should(live).have.property("ok", true);
    should(await purgeDocuments(db, ["gone", "live", "revived"], { onlyDeleted: true })).eql({ purged: ["gone"], missing: [], live: ["live", "revived"] });
    should(await db.get("revived")).have.property("n", 2);
    should((await db.info()).doc_count).equal(2);
    await should(db.get("gone")).be.rejectedWith({ status: 404, reason: "missing" });
  });

  it("removes a document with every revision, leaving no tombstone, no change and the right count, also after a reopen", async () => {
    const dir = dirs.make();
    let db = openDatabase(dir, "db");
    await db.bulkDocs([{ _id: "a", n: 1 }, { _id: "b", n: 2 }, { _id: "c", n: 3 }]);
    const b = await db.get("b");
    await db.put({ ...b, n: 22 });
    const result = await purgeDocuments(db, ["b", "nope"]);
    should(result).eql({ purged: ["b"], missing: ["nope"] });
    const err = await db.get("b").then(() => undefined, (e: { status?: number; reason?: string }) => e);
    should(err?.status).equal(404);
    should(err?.reason).equal("missing"); // "deleted" would mean a tombstone
    should((await db.allDocs()).rows.map((row) => row.id)).eql(["a", "c"]);
    should((await db.changes({ since: 0 })).results.map((change) => change.id).sort()).eql(["a", "c"]);
    should((await db.info()).doc_count).equal(2);
    await db.put({ _id: "d" }); // the count the adapter caches is the one it writes next
    should((await db.info()).doc_count).equal(3);
    await db.close();
    db = openDatabase(dir, "db");
    try {
      should((await db.info()).doc_count).equal(3);
      should((await db.allDocs()).rows.map((row) => row.id)).eql(["a", "c", "d"]);
    } finally {
      await db.close();
    }
  });

  it("does not count a deleted document out twice", async () => {
    const db = database();
    const live = await db.put({ _id: "live" });
    const gone = await db.put({ _id: "gone" });
    await db.remove({ _id: "gone", _rev: gone.rev });
    should((await db.info()).doc_count).equal(1);
    await purgeDocuments(db, ["gone"]);
    should((await db.info()).doc_count).equal(1);
    await purgeDocuments(db, ["live"]);
    should((await db.info()).doc_count).equal(0);
    should(live.ok).be.true();
  });

  it("keeps peers' copies: replicating after the purge sends no deletion, and a new peer never gets the document", async () => {
    const source = database();
    const peer = database();
    await source.bulkDocs([{ _id: "old", t: 1 }, { _id: "new", t: 2 }]);
    await PouchDB.replicate(source, peer);
    await purgeDocuments(source, ["old"]);
    await source.put({ _id: "newer", t: 3 });
    await PouchDB.replicate(source, peer);
    should((await peer.get<{ t: number }>("old")).t).equal(1);
    should((await peer.allDocs()).rows.map((row) => row.id)).eql(["new", "newer", "old"]);
    const stranger = database();
    await PouchDB.replicate(source, stranger);
    should((await stranger.allDocs()).rows.map((row) => row.id)).eql(["new", "newer"]);
  });

  it("removes every leaf of a conflicted document", async () => {
    const db = database();
    await db.bulkDocs({ docs: [{ _id: "x", _rev: "1-aaa", v: "here" }, { _id: "x", _rev: "1-bbb", v: "there" }], new_edits: false });
    should((await db.get("x", { conflicts: true }) as { _conflicts?: string[] })._conflicts).have.length(1);
    should(await purgeDocuments(db, ["x"])).eql({ purged: ["x"], missing: [] });
    should((await db.allDocs()).rows).have.length(0);
    // Written again later (a peer's new edit), it is a document like any other.
    await db.bulkDocs({ docs: [{ _id: "x", _rev: "2-ccc", _revisions: { start: 2, ids: ["ccc", "aaa"] }, v: "again" }], new_edits: false });
    should((await db.get<{ v: string }>("x")).v).equal("again");
  });

  it("keeps an attachment another document still uses", async () => {
    const db = database();
    const data = Buffer.from("the same bytes").toString("base64");
    const attachment = { "note.txt": { content_type: "text/plain", data } };
    await db.bulkDocs([{ _id: "one", _attachments: attachment }, { _id: "two", _attachments: attachment }]);
    await purgeDocuments(db, ["one"]);
    should((await db.getAttachment("two", "note.txt")).toString()).equal("the same bytes");
    await purgeDocuments(db, ["two"]);
    await db.put({ _id: "three", _attachments: attachment }); // stored afresh, not from a stale reference
    should((await db.getAttachment("three", "note.txt")).toString()).equal("the same bytes");
  });

  it("stays consistent with writes made at the same time", async () => {
    const db = database();
    await db.bulkDocs(Array.from({ length: 200 }, (_, i) => ({ _id: `doc-${String(i).padStart(3, "0")}` })));
    const ids = Array.from({ length: 100 }, (_, i) => `doc-${String(i).padStart(3, "0")}`);
    const writes = Array.from({ length: 20 }, (_, i) => db.put({ _id: `late-${i}` }));
    const [result] = await Promise.all([purgeDocuments(db, ids), ...writes]);
    should(result.purged).have.length(100);
    const rows = (await db.allDocs()).rows;
    should(rows).have.length(120);
    should((await db.info()).doc_count).equal(120);
  });

  it("waits for a changes read under way (which would throw on a document gone from under it) and holds new ones until it is done", async () => {
    const db = database();
    await db.bulkDocs(Array.from({ length: 3_000 }, (_, i) => ({ _id: `doc-${String(i).padStart(4, "0")}` })));
    const ids = Array.from({ length: 2_500 }, (_, i) => `doc-${String(i).padStart(4, "0")}`);
    // A read from the start, as a peer's first replication makes, that has begun when the purge comes.
    const read = db.changes({ since: 0, include_docs: true });
    const begun = new Promise<void>((resolve) => read.on("change", () => resolve()));
    await begun;
    const purge = purgeDocuments(db, ids);
    const later = db.changes({ since: 0 }); // asked for while the purge runs
    const [first, result, second] = await Promise.all([read, purge, later]);
    should(first.results).have.length(3_000); // it saw the database as it was
    should(result.purged).have.length(2_500);
    should(second.results).have.length(500); // and this one as it is after
  });

  it("compacts with changes reads held back, and beside a read that outlasts its wait, where a purge refuses", async () => {
    const db = database();
    await db.bulkDocs(Array.from({ length: 8_000 }, (_, i) => ({ _id: `doc-${String(i).padStart(5, "0")}`, pad: "x".repeat(100) })));
    const order: string[] = [];
    const compact = async (): Promise<void> => {
      await compactStore(db);
      order.push("compacted");
    };
    // Held back: a read asked for while the compaction runs starts after it.
    const compacting = compactWithReadsHeld(db, compact);
    const read = db.changes({ since: 0, limit: 10 }).then(() => void order.push("read"));
    await Promise.all([compacting, read]);
    should(order).eql(["compacted", "read"]);
    // A read from the start with every document is still under way when the wait (shortened here) runs out.
    const wait = readsWait.ms;
    readsWait.ms = 20;
    try {
      order.length = 0;
      const long = db.changes({ since: 0, include_docs: true }).then(() => void order.push("long read"));
      await new Promise<void>((resolve) => setImmediate(resolve));
      await should(purgeDocuments(db, ["doc-00000"])).be.rejectedWith(/changes feed was read for over/);
      await compactWithReadsHeld(db, compact);
      await long;
      should(order).eql(["compacted", "long read"]);
      should((await db.get("doc-00000"))._id).equal("doc-00000"); // the refused purge changed nothing
    } finally {
      readsWait.ms = wait;
    }
  });

  it("gives the space back once reclaimed", async () => {
    const db = database();
    // Random bytes: LevelDB compresses its tables, and repeated text would take next to no space.
    for (let at = 0; at < 6_000; at += 1_000) await db.bulkDocs(Array.from({ length: 1_000 }, (_, i) => ({ _id: `r-${at + i}`, pad: crypto.randomBytes(750).toString("base64") })));
    await reclaimSpace(db);
    const full = databaseBytes(db);
    should(full).be.above(4_000_000);
    const ids = (await db.allDocs()).rows.map((row) => row.id);
    await purgeDocuments(db, ids.slice(0, 5_000));
    await reclaimSpace(db);
    const after = databaseBytes(db);
    console.log(`      ${(full / 1e6).toFixed(1)} MB before, ${(after / 1e6).toFixed(1)} MB after purging 5 of 6 thousand documents`);
    should(after).be.below(full / 3);
    should(path.basename(db.name)).equal("db");
  });
});
