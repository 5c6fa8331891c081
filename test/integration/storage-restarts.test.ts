import should from "should";
import { closeIdleDatabases, Device, DeviceOptions, Identity, openDatabaseCount } from "../../lib";
import { TempDirs } from "../helpers/storage";

/** Resolves with `work`, or fails naming what hung: a hang is the failure these tests look for. */
async function within<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms)));
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A device restarted on the same storage in one process, as a Node-RED deploy restarts an identity:
 * with the old one's stop still under way (Node-RED starts the new nodes once a close handler has taken
 * 15 s, finished or not), and one after the other. Neither may hang, lose data or close the database
 * under the other.
 */
describe("storage: a device restarted on the same storage in one process", function () {
  this.timeout(60_000);
  const dirs = new TempDirs();
  const devices: Device[] = [];
  afterEach(async () => {
    await Promise.all(devices.splice(0).map((device) => device.stop()));
    await closeIdleDatabases();
    dirs.removeAll();
  });

  function device(options: DeviceOptions): Device {
    const created = new Device(options);
    devices.push(created);
    return created;
  }

  it("starts while the old device is still stopping, and keeps working after the old stop has finished", async () => {
    const options: DeviceOptions = { identity: Identity.generate(), storageDir: dirs.make(), databases: ["readings"] };
    const old = device(options);
    await old.start();
    await old.databases.open("readings").put({ _id: "before" });
    const stopping = old.stop();
    const again = device(options);
    await within(10_000, "the new device's start", again.start());
    should((await within(5_000, "a read", again.databases.open("readings").get("before")))._id).equal("before");
    await stopping;
    // The old device's stop must not have closed what the new one uses.
    await within(5_000, "a write after the old stop", again.databases.open("readings").put({ _id: "after" }));
    should(again.mesh.has(`dev:${again.id}`)).be.true();
    await within(5_000, "a mesh write after the old stop", again.mesh.send(again.id, "to myself"));
  });

  it("one after the other: the new device takes the open database over, and it closes only once no device uses it", async () => {
    const options: DeviceOptions = { identity: Identity.generate(), storageDir: dirs.make(), databases: ["readings"] };
    await closeIdleDatabases();
    const before = openDatabaseCount().open;
    const first = device(options);
    await first.start();
    await first.databases.open("readings").put({ _id: "kept" });
    should(openDatabaseCount()).eql({ open: before + 2, inUse: before + 2 }); // system and readings
    await first.stop();
    should(openDatabaseCount()).eql({ open: before + 2, inUse: before }); // lingering for a restart
    const second = device(options);
    await second.start();
    should(openDatabaseCount()).eql({ open: before + 2, inUse: before + 2 });
    should((await second.databases.open("readings").get("kept"))._id).equal("kept");
    await second.stop();
    await closeIdleDatabases();
    should(openDatabaseCount().open).equal(before);
    // Opened afresh from disk, the data is all there.
    const third = device(options);
    await third.start();
    should((await third.databases.open("readings").get("kept"))._id).equal("kept");
  });
});
