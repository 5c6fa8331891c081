import PouchDB from "pouchdb-node";
import should from "should";
import type { Database } from "../../lib";
import { interceptReplicatedWrites } from "../../lib/storage/replicated-writes";
import { useTempDatabases } from "../helpers/storage";

/**
 * The mesh's only check of relayed documents sits on the call PouchDB's replicator makes to write them
 * (bulkDocs with new_edits=false). These tests run the real replicator, so that a PouchDB that writes
 * replicated documents another way fails here instead of letting them in unchecked.
 */
describe("replicated writes", function () {
  this.timeout(20_000); // LevelDB opens
  const database = useTempDatabases();

  it("routes every document PouchDB's replicator writes through the handler, which decides what is stored", async () => {
    const [source, target] = [database(), database()];
    await source.bulkDocs([{ _id: "keep-1" }, { _id: "refuse-me" }, { _id: "keep-2" }]);
    const seen: string[] = [];
    interceptReplicatedWrites(target, async (write, store) => {
      seen.push(...write.docs.map((doc) => doc._id));
      const refused = write.docs.filter((doc) => doc._id.startsWith("refuse"));
      await store({ docs: write.docs.filter((doc) => !refused.includes(doc)), new_edits: false });
      return refused.map((doc) => ({ id: doc._id, error: "forbidden", reason: "not wanted", name: "forbidden", status: 403 }));
    });
    const denied: string[] = [];
    const replication = PouchDB.replicate(source, target);
    replication.on("denied", (err) => denied.push(String((err as { id?: string }).id)));
    const result = await replication;
    should(seen.sort()).eql(["keep-1", "keep-2", "refuse-me"]);
    should(denied).eql(["refuse-me"]);
    should(result.doc_write_failures).equal(1);
    should((await target.allDocs()).rows.map((row) => row.id)).eql(["keep-1", "keep-2"]);
  });

  it("lets a device's own writes pass as they came, and a second interceptor replaces the first", async () => {
    const db = database();
    const calls: string[] = [];
    interceptReplicatedWrites(db, async (write, store) => (calls.push("first"), store(write)));
    interceptReplicatedWrites(db, async (write, store) => (calls.push("second"), store(write)));
    await db.put({ _id: "own" });
    await db.bulkDocs([{ _id: "own-too" }]);
    should(calls).eql([]);
    await PouchDB.replicate(await seeded(database()), db);
    should(calls).eql(["second"]);
  });

  async function seeded(db: Database): Promise<Database> {
    await db.put({ _id: "from-afar" });
    return db;
  }
});
