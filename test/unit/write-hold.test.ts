import { setTimeout as sleep } from "node:timers/promises";
import should from "should";
import { heldWrites, holdWrites } from "../../lib/storage/write-hold";
import { useTempDatabases } from "../helpers/storage";

/** Whether `promise` has settled after the event loop had a moment to run it. */
async function settled(promise: Promise<unknown>, ms = 100): Promise<boolean> {
  let done = false;
  void promise.then(
    () => (done = true),
    () => (done = true),
  );
  await sleep(ms);
  return done;
}

describe("write hold: a database's writes wait while its keeper purges", function () {
  this.timeout(30_000);
  const database = useTempDatabases();

  it("holds every kind of document write until released, then stores them in the order they came", async () => {
    const db = database();
    await db.put({ _id: "existing", n: 0 });
    const hold = holdWrites(db);
    const existing = await db.get("existing"); // reads go on
    const writes = [
      db.put({ _id: "a", n: 1 }),
      db.post({ n: 2 }),
      db.bulkDocs([{ _id: "b", n: 3 }]),
      db.bulkDocs({ docs: [{ _id: "c", _rev: "1-abc", n: 4 }], new_edits: false }),
      db.remove(existing),
    ];
    should(await settled(Promise.race(writes))).be.false();
    should(heldWrites(db)).equal(writes.length);
    should((await db.allDocs()).rows.map((row) => row.id)).eql(["existing"]);
    hold.release();
    await Promise.all(writes);
    should(hold.active).be.false();
    should(heldWrites(db)).equal(0);
    const ids = (await db.allDocs()).rows.map((row) => row.id);
    should(ids).containEql("a");
    should(ids).containEql("b");
    should(ids).containEql("c");
    should(ids).not.containEql("existing");
    const changes = (await db.changes({ since: 1 })).results.map((change) => change.id);
    // In the order they came: the put, the post (an id of PouchDB's), the two batches, the removal.
    should(changes.length).equal(5);
    should([changes[0], changes[2], changes[3], changes[4]]).eql(["a", "b", "c", "existing"]);
  });

  it("waits for the last of two holds", async () => {
    const db = database();
    const first = holdWrites(db);
    const second = holdWrites(db);
    const write = db.put({ _id: "a" });
    first.release();
    first.release(); // a second release of the same hold changes nothing
    should(await settled(write)).be.false();
    second.release();
    await write;
  });

  it("ends by itself after its longest time, so a stalled purge cannot hang the writers", async () => {
    const db = database();
    const hold = holdWrites(db, 200);
    const write = db.put({ _id: "a" });
    should(await settled(write, 50)).be.false();
    await write; // no release: the hold's own time ends it
    should(hold.active).be.false();
    should(await db.get("a")).have.property("_id", "a");
  });
});
