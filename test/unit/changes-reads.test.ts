import should from "should";
import { recordChangesReads, useTempDatabases } from "../helpers/storage";

/** The helper the mesh tests count a database's changes reads with (test/helpers/storage.ts). */
describe("recordChangesReads", () => {
  const database = useTempDatabases();

  it("counts one-off reads, not a live feed nor the reads PouchDB makes for it at each change", async () => {
    const db = database();
    await db.put({ _id: "before" });
    const seen: string[] = [];
    const feed = db.changes({ since: "now", live: true });
    const allSeen = new Promise<void>((resolve) => {
      feed.on("change", (change) => {
        seen.push(change.id);
        if (seen.length === 5) resolve();
      });
    });
    const reads = recordChangesReads(db);
    try {
      for (let i = 0; i < 5; i++) await db.put({ _id: `after-${i}` });
      await allSeen;
      should(seen).have.length(5);
      await db.changes({ since: 1 });
      should(reads.since).eql([1]);
    } finally {
      reads.restore();
      feed.cancel();
    }
  });
});
