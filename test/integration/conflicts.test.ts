import should from "should";
import { ConflictWatcher, Device, Identity, type ConflictEvent } from "../../lib";
import { freePort } from "../helpers/ports";
import { useDevices } from "../helpers/devices";

/** The same document edited on two devices while apart, then replicated: reported, and resolved the same on both. */
describe("replication conflicts", function () {
  this.timeout(30_000);
  const watchers: ConflictWatcher[] = [];
  // Registered first, so the watchers stop before useDevices stops the devices under them.
  afterEach(async () => {
    await Promise.all(watchers.splice(0).map((watcher) => watcher.stop()));
  });
  const { devices, dirs } = useDevices();

  async function pair(): Promise<[Device, Device]> {
    const identities = [Identity.generate(), Identity.generate()];
    const ports = await Promise.all([freePort(), freePort()]);
    const made = identities.map((identity, i) => new Device({
      identity,
      port: ports[i],
      storageDir: dirs.make(),
      databases: ["settings"],
      peers: [{ id: identities[1 - i].deviceId, name: `d${1 - i}`, address: `127.0.0.1:${ports[1 - i]}` }],
      discovery: { staticProbeIntervalMs: 0 },
    }));
    devices.push(...made);
    await Promise.all(made.map((device) => device.start()));
    return [made[0], made[1]];
  }

  /**
   * Documents edited on both devices while apart: "a-later-<n>" was edited later on A, "b-later-<n>" later
   * on B. Ten of them: CouchDB's own pick (by revision hash) matches the later edit for all ten only once
   * in 1,024 runs, so a resolver that changed nothing would fail here.
   */
  const IDS = [0, 1, 2, 3, 4].flatMap((n) => [`a-later-${n}`, `b-later-${n}`]);
  async function editApart(a: Device, b: Device): Promise<void> {
    const [dbA, dbB] = [a.databases.open("settings"), b.databases.open("settings")];
    await dbA.bulkDocs(IDS.map((id) => ({ _id: id, value: "first", updatedAt: 1 })));
    await a.databases.replicate("d1", "settings", "push");
    for (const [db, from] of [[dbA, "A"], [dbB, "B"]] as const) {
      for (const id of IDS) {
        const doc = await db.get<{ value: string; updatedAt: number }>(id);
        const later = id.startsWith(from === "A" ? "a-later" : "b-later");
        await db.put({ ...doc, value: `from ${from}`, updatedAt: later ? 3000 : new Date(2000).toISOString() });
      }
    }
  }

  const seen = (watcher: ConflictWatcher, count: number): Promise<ConflictEvent[]> =>
    new Promise((resolve) => {
      const events: ConflictEvent[] = [];
      watcher.on("conflict", (event) => {
        events.push(event);
        if (events.length === count) resolve(events);
      });
    });

  it("last writer wins by a timestamp field: both devices end with the later edit of each document, and no conflict left", async () => {
    const [a, b] = await pair();
    await editApart(a, b);
    const [onA, onB] = [a, b].map((device) => new ConflictWatcher(device.databases.open("settings"), "settings", { kind: "last-writer-wins", field: "updatedAt" }));
    watchers.push(onA, onB);
    onA.start();
    onB.start();
    // Whichever side gets the other's edits first sees the conflicts and resolves them; the other side then
    // gets the losing branches already deleted, so it has no conflict to see.
    // Push and pull run together, so both sides may see (and resolve, the same way) the same conflict.
    const events: ConflictEvent[] = [];
    const all = new Promise<void>((resolve) => {
      for (const watcher of [onA, onB]) watcher.on("conflict", (event) => events.push(event) && new Set(events.map((seen) => seen.id)).size === IDS.length && resolve());
    });
    await a.databases.replicate("d1", "settings", "both");
    await all;
    for (const event of events) should(event.resolved).match({ by: "last-writer-wins" });
    await a.databases.replicate("d1", "settings", "both"); // the tombstones of the losing leaves cross too
    for (const device of [a, b]) {
      const db = device.databases.open("settings");
      for (const id of IDS) {
        const doc = await db.get<{ value: string }>(id, { conflicts: true });
        should(doc.value).equal(id.startsWith("a-later") ? "from A" : "from B", id);
        should(doc._conflicts ?? []).eql([], id);
      }
    }
    const [finalA, finalB] = await Promise.all([a, b].map((device) => device.databases.open("settings").get("b-later-0")));
    should(finalA._rev).equal(finalB._rev);
  });

  it("report only: the event names the winner and the losing revision, and a flow's choice is kept on both sides", async () => {
    const [a, b] = await pair();
    await editApart(a, b);
    const onA = new ConflictWatcher(a.databases.open("settings"), "settings", { kind: "report" });
    watchers.push(onA);
    onA.start();
    const events = seen(onA, IDS.length);
    await a.databases.replicate("d1", "settings", "pull");
    const early = (await events).find((event) => event.id === "a-later-0")!;
    should(early.resolved).be.undefined();
    should(early.losers).have.length(1);
    const leaves = await a.databases.open("settings").get("a-later-0", { open_revs: [early.winner, ...early.losers] });
    const fromB = leaves.find((leaf) => (leaf.ok as { value?: string } | undefined)?.value === "from B")!.ok!._rev;
    should(await onA.resolve("a-later-0", fromB)).match({ resolved: { kept: fromB, by: "flow" } });
    await a.databases.replicate("d1", "settings", "push");
    for (const device of [a, b]) {
      const doc = await device.databases.open("settings").get<{ value: string }>("a-later-0", { conflicts: true });
      should(doc.value).equal("from B");
      should(doc._conflicts ?? []).eql([]);
    }
    await should(onA.resolve("b-later-0", "9-nonesuch")).be.rejectedWith(/has no live revision 9-nonesuch/);
  });
});
