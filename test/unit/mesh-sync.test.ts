import { EventEmitter } from "node:events";
import should from "should";
import { type Database, type Mesh, MeshSync, openDatabase, type SyncHost, type SyncReport } from "../../lib";
import { recordChangesReads, TempDirs, useTempDatabases } from "../helpers/storage";

const PEER = "p".repeat(52);

/**
 * A device for MeshSync with one peer in range: its mesh "replicates" between two local databases, and
 * its database replication waits until the test lets it finish.
 */
class FakeHost implements SyncHost {
  readonly peerTable = Object.assign(new EventEmitter(), { list: () => [{ id: PEER }] }) as unknown as SyncHost["peerTable"];
  readonly mesh: Mesh;
  readonly databaseCalls: string[] = [];
  private releaseDatabases!: () => void;
  readonly databasesHeld = new Promise<void>((resolve) => (this.releaseDatabases = resolve));

  constructor(private readonly local: Database, private readonly remote: () => Database) {
    this.mesh = Object.assign(new EventEmitter(), {
      database: local,
      selectFor: () => [],
      markPresent: () => undefined,
      revisionsOf: () => new Map(),
      sequenceFloor: () => 0,
      noteNeighbour: async () => undefined,
      configure: () => undefined,
    }) as unknown as Mesh;
  }

  resolvePeer(reference: string): string {
    return reference;
  }

  async allows(): Promise<boolean> {
    return true;
  }

  readonly databases: SyncHost["databases"] = {
    open: () => this.local,
    replicate: async (peer, name, direction) => {
      this.databaseCalls.push(name);
      await this.databasesHeld;
      return { peer, database: name, direction, docsRead: 0, docsWritten: 0, failures: 0, bytesSent: 0, bytesReceived: 0, errors: [], refused: [] };
    },
    remote: () => this.remote(),
    track: (work) => work,
  };

  finishDatabases(): void {
    this.releaseDatabases();
  }
}

describe("mesh sync sessions", function () {
  this.timeout(20_000); // LevelDB opens
  const database = useTempDatabases();
  const dirs = new TempDirs();
  afterEach(() => dirs.removeAll());

  it("moves mesh documents while a long database replication with the same peer is still under way", async () => {
    const host = new FakeHost(database(), () => database());
    const sync = new MeshSync(host, { databases: ["readings"], direction: "both", mesh: true, policy: { intervalMs: 60_000 } });
    const meshSessions: SyncReport[] = [];
    sync.on("sync", (report) => void (report.database === "mesh" && meshSessions.push(report)));
    sync.start();
    try {
      await waitUntil(() => meshSessions.length === 1 && host.databaseCalls.length === 1);
      // Messages stored meanwhile ask for more rounds: the mesh goes at once and once more after that;
      // the database's next round waits for the one under way.
      sync.syncPeer(PEER);
      sync.syncPeer(PEER);
      await waitUntil(() => meshSessions.length === 3);
      should(host.databaseCalls).eql(["readings"]);
      host.finishDatabases();
      await waitUntil(() => host.databaseCalls.length === 2); // the round asked for while it ran
      await sync.settled();
      should(meshSessions).have.length(3);
    } finally {
      host.finishDatabases();
      await sync.stop();
    }
  });

  it("pushes a neighbour's few routed documents reading the store from the oldest of them, not from sequence 0", async () => {
    const local = database();
    const remoteDir = dirs.make();
    for (let i = 0; i < 40; i++) await local.put({ _id: `msg:${String(i).padStart(3, "0")}` });
    const newest = "msg:039";
    const floor = (await local.info()).update_seq as number;
    // Each session opens the remote and closes it after.
    const host = new FakeHost(local, () => openDatabase(remoteDir, "db"));
    // The mesh routes only the newest document to the peer, and knows the sequence it was written at.
    Object.assign(host.mesh, { selectFor: () => [newest], sequenceFloor: (ids: readonly string[]) => (ids.length === 1 && ids[0] === newest ? floor - 1 : 0) });
    const reads = recordChangesReads(local);
    const sync = new MeshSync(host, { databases: [], direction: "both", mesh: true, policy: { intervalMs: 60_000 } });
    const meshSessions: SyncReport[] = [];
    sync.on("sync", (report) => void (report.database === "mesh" && meshSessions.push(report)));
    sync.start();
    try {
      await waitUntil(() => meshSessions.length === 1);
    } finally {
      await sync.stop();
      reads.restore();
    }
    should(meshSessions[0].docsWritten).equal(1);
    const remote = openDatabase(remoteDir, "db");
    try {
      should((await remote.allDocs()).rows.map((row) => row.id)).eql([newest]);
    } finally {
      await remote.close();
    }
    // The push's changes reads (the first, and the one that finds nothing more) start at the floor.
    should(reads.since.length).be.above(0);
    for (const since of reads.since) should(since).be.aboveOrEqual(floor - 1);
  });
});

async function waitUntil(test: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
