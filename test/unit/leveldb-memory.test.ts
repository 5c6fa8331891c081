import should from "should";
import { LEVELDB_OPTIONS, levelDbMemory } from "../../lib";
import { LEVELDB_WRITE_BUFFER_BYTES } from "../../lib/storage/database";
import { useTempDatabases } from "../helpers/storage";

describe("LevelDB's memory per database", function () {
  this.timeout(120_000);
  const database = useTempDatabases();

  it("stays within its bounds while 12 MB of documents are written and read back at random", async () => {
    const db = database();
    const before = levelDbMemory();
    const docs = 40_000;
    for (let at = 0; at < docs; at += 2_000) {
      await db.bulkDocs(Array.from({ length: 2_000 }, (_, i) => ({ _id: `reading-${String(at + i).padStart(6, "0")}`, celsius: (at + i) % 40, pad: "x".repeat(300) })));
    }
    // Reads at random fill the block cache with as much of the 12 MB as it will hold.
    for (let i = 0; i < 6_000; i++) await db.get(`reading-${String(Math.floor(Math.random() * docs)).padStart(6, "0")}`);
    const after = levelDbMemory();
    should(after.databases).equal(before.databases + 1);
    const mine = after.bytes - before.bytes;
    // The cache, the write buffer (what was being written out is on disk by now), and LevelDB's own bookkeeping.
    const bound = LEVELDB_OPTIONS.cacheSize + LEVELDB_WRITE_BUFFER_BYTES + (1 << 20);
    console.log(`      LevelDB holds ${(mine / 1048576).toFixed(1)} MB for this database (bound ${(bound / 1048576).toFixed(0)} MB; LevelDB's defaults allow 13 MB)`);
    should(mine).be.above(LEVELDB_OPTIONS.cacheSize / 2); // it was counted at all
    should(mine).be.belowOrEqual(bound);
  });
});
