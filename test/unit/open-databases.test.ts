import fs from "node:fs";
import path from "node:path";
import should from "should";
import { acquireDatabase, closeIdleDatabases, openDatabaseCount } from "../../lib/storage/open-databases";
import { TempDirs } from "../helpers/storage";

describe("open databases (one per directory in the process)", () => {
  const dirs = new TempDirs();
  afterEach(async () => {
    await closeIdleDatabases();
    dirs.removeAll();
  });

  it("gives every user of a directory the same database, and closes it only once all have let go", async () => {
    const location = path.join(dirs.make(), "db");
    const [first, second] = await Promise.all([acquireDatabase(location), acquireDatabase(location)]);
    should(first.db).equal(second.db);
    await first.db.put({ _id: "a" });
    first.release();
    first.release(); // a second release of the same lease changes nothing
    await closeIdleDatabases();
    should((await second.db.get("a"))._id).equal("a"); // still open for the other user
    second.release();
    await closeIdleDatabases();
    const third = await acquireDatabase(location);
    should(third.db).not.equal(first.db); // opened afresh from disk
    should((await third.db.get("a"))._id).equal("a");
    third.release();
  });

  it("a user who comes while the close is under way waits for it and gets the directory opened afresh", async () => {
    const location = path.join(dirs.make(), "db");
    const lease = await acquireDatabase(location);
    await lease.db.put({ _id: "kept" });
    lease.release();
    const closing = closeIdleDatabases();
    const again = await acquireDatabase(location);
    await closing;
    should((await again.db.get("kept"))._id).equal("kept");
    should(openDatabaseCount().inUse).be.aboveOrEqual(1);
    again.release();
  });

  it("a directory that cannot be opened fails every user who waited for it, and the next try starts afresh", async () => {
    const location = path.join(dirs.make(), "db");
    const lease = await acquireDatabase(location);
    lease.release();
    await closeIdleDatabases();
    fs.writeFileSync(path.join(location, "CURRENT"), "garbage\n");
    const outcomes = await Promise.allSettled([acquireDatabase(location), acquireDatabase(location)]);
    should(outcomes.map((outcome) => outcome.status)).eql(["rejected", "rejected"]);
    fs.rmSync(location, { recursive: true, force: true });
    const fresh = await acquireDatabase(location);
    await fresh.db.put({ _id: "new" });
    fresh.release();
  });
});
