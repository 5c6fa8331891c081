import { ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import should from "should";
import { closeIdleDatabases, Device, Identity, StorageError } from "../../lib";
import { TempDirs } from "../helpers/storage";

/**
 * Storage that cannot be used: a LOCK held by another process (a second Node-RED on the same user
 * directory), garbage in CURRENT, a damaged database. Each is a clear error naming the directory and
 * what to do, never a crash, and the device still sends and receives messages (which need no storage).
 */
describe("storage faults at start", function () {
  this.timeout(60_000);
  const dirs = new TempDirs();
  const devices: Device[] = [];
  let holder: ChildProcess | undefined;
  afterEach(async () => {
    holder?.kill();
    holder = undefined;
    await Promise.all(devices.splice(0).map((device) => device.stop()));
    dirs.removeAll();
  });

  /** A device on `storageDir` that another device knows; resolves with both once the storage is tried. */
  async function withPeer(identity: Identity, storageDir: string): Promise<{ device: Device; other: Device; warnings: Error[] }> {
    const otherIdentity = Identity.generate();
    const device = new Device({ identity, storageDir, databases: ["readings"], peers: [{ id: otherIdentity.deviceId, name: "other" }], discovery: { staticProbeIntervalMs: 0 } });
    const warnings: Error[] = [];
    device.on("warning", (err) => void warnings.push(err));
    devices.push(device);
    const port = await device.start();
    const other = new Device({ identity: otherIdentity, peers: [{ id: identity.deviceId, name: "device", address: `127.0.0.1:${port}` }], discovery: { staticProbeIntervalMs: 0 } });
    devices.push(other);
    await other.start();
    return { device, other, warnings };
  }

  /** A storage directory a device has used (a document in "readings"), and that device's identity. */
  async function usedStorage(): Promise<{ identity: Identity; storageDir: string }> {
    const identity = Identity.generate();
    const storageDir = dirs.make();
    const first = new Device({ identity, storageDir, databases: ["readings"] });
    await first.start();
    await first.databases.open("readings").put({ _id: "kept" });
    await first.stop();
    // As when Node-RED has stopped: the damage below is done to files no process has open.
    await closeIdleDatabases();
    return { identity, storageDir };
  }

  async function messagesStillFlow(device: Device, other: Device): Promise<void> {
    const received: unknown[] = [];
    device.onMessage("t", (message) => void received.push(message.payload));
    should((await other.send(device.id, "t", "no storage needed")).receivers).equal(1);
    should(received).eql(["no storage needed"]);
  }

  it("a LOCK held by another process: says so with the path and what to do, and the wire still works", async () => {
    const identity = Identity.generate();
    const storageDir = dirs.make();
    const system = path.join(storageDir, "system");
    holder = spawn(process.execPath, ["-e", `const P = require(${JSON.stringify(require.resolve("pouchdb-node"))}); new P(${JSON.stringify(system)}).info().then(() => { console.log("holding"); setInterval(() => undefined, 1000); });`], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise((resolve) => holder!.stdout!.once("data", resolve));
    const { device, other, warnings } = await withPeer(identity, storageDir);
    should(device.storageError).be.instanceOf(StorageError);
    should(device.storageError!.message).match(/in use by another process/).and.containEql(system);
    should(warnings.map((w) => w.message).join("\n")).match(/in use by another process/);
    should(() => device.mesh).throw(/in use by another process/);
    should(() => device.databases.open("readings")).throw(/in use by another process/);
    await messagesStillFlow(device, other);
  });

  it("garbage in CURRENT: the database is named as damaged, with what to do; the wire still works", async () => {
    const { identity, storageDir } = await usedStorage();
    fs.writeFileSync(path.join(storageDir, "system", "CURRENT"), "MANIFEST-garbage\n");
    const { device, other } = await withPeer(identity, storageDir);
    should(device.storageError!.message).match(/is damaged/).and.match(/move that directory aside/).and.containEql(path.join(storageDir, "system"));
    await messagesStillFlow(device, other);
  });

  it("a table file cut short (.ldb): named as damaged at start, not at the first read that reaches it", async () => {
    const identity = Identity.generate();
    const storageDir = dirs.make();
    const readings = path.join(storageDir, "databases", "readings");
    const tables = (): string[] => (fs.existsSync(readings) ? fs.readdirSync(readings).filter((file) => file.endsWith(".ldb")) : []);
    // Enough documents that LevelDB keeps some in a table file once the log is compacted at the next open.
    for (let round = 0; round < 3 && tables().length === 0; round++) {
      const writer = new Device({ identity, storageDir, databases: ["readings"] });
      await writer.start();
      await writer.databases.open("readings").bulkDocs(Array.from({ length: 5_000 }, (_, n) => ({ _id: `r${round}-${n}`, pad: "x".repeat(300) })));
      await writer.stop();
      await closeIdleDatabases();
    }
    const [table] = tables();
    should(table).be.ok();
    const file = path.join(readings, table);
    fs.truncateSync(file, Math.floor(fs.statSync(file).size / 2));
    const { device, other, warnings } = await withPeer(identity, storageDir);
    should(device.storageError).be.undefined();
    should(() => device.databases.open("readings")).throw(/is damaged/);
    should(warnings.map((w) => w.message).join("\n")).containEql(readings).and.match(/truncated/).and.match(/move that directory aside/);
    await messagesStillFlow(device, other);
  });

  it("one damaged database of several: that one is refused with its path, the system store and the wire work", async () => {
    const { identity, storageDir } = await usedStorage();
    const readings = path.join(storageDir, "databases", "readings");
    fs.writeFileSync(path.join(readings, "CURRENT"), "garbage\n");
    const { device, other, warnings } = await withPeer(identity, storageDir);
    should(device.storageError).be.undefined();
    should(() => device.databases.open("readings")).throw(StorageError);
    should(warnings.map((w) => w.message).join("\n")).containEql(readings);
    should(device.mesh.storedMessages).equal(0);
    await messagesStillFlow(device, other);
  });
});
