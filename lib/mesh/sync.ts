import { EventEmitter } from "node:events";
import type { PeerTable } from "../discovery/peer-table";
import { type Database, remoteDatabase } from "../storage/database";
import { Direction, refusalText, replicateOnce, SyncReport } from "../replication/replicator";
import { ByteCounter, countingFetch } from "../replication/wire-fetch";
import { CLOUD_PEER } from "../protocol/doc-ids";
import { MESH_PATH, type Verb } from "../protocol/wire";
import type { Mesh } from "./mesh";

export interface CloudOptions {
  /** The server's base URL, e.g. https://couch.example.com:6984 (databases are <url>/<name>). */
  url: string;
  auth?: { username: string; password: string };
  /** The server database that holds the mesh documents. */
  meshDatabase?: string;
}

export interface SyncPolicy {
  /** Between sync rounds; 0 syncs whenever something changes (and on the fallback poll). */
  intervalMs: number;
  /** Per session with one peer, for mesh documents. */
  maxDocs?: number;
  maxBytes?: number;
}

export interface MeshSyncOptions {
  /** Databases (of the device's) replicated with each peer and the cloud. */
  databases: string[];
  direction: Direction;
  /** Exchange store-and-forward documents with peers too. */
  mesh: boolean;
  /** Only these peers (ids or names); empty: every peer in range. */
  peers?: string[];
  cloud?: CloudOptions;
  policy: SyncPolicy;
}

/**
 * What mesh sync needs of the device it runs on (a Device is one): who is in range, the mesh store, the
 * device's ACL and its replication. Sync learns nothing else of the device, and tells it nothing but
 * through its events.
 */
/** What a sync needs of a device's databases (DeviceDatabases has these). */
export interface SyncDatabases {
  open(name: string): Database;
  /** One of the device's databases with the same one on a peer, over the wire. */
  replicate(peer: string, name: string, direction: Direction): Promise<SyncReport>;
  /** The peer's database at a wire path, its bytes counted. */
  remote(peerId: string, path: string, counter?: ByteCounter): Database;
  /** Replication work the device's stop waits for before it closes its databases. */
  track<T>(work: Promise<T>): Promise<T>;
}

export interface SyncHost {
  readonly peerTable: Pick<PeerTable, "list" | "on" | "off">;
  readonly mesh: Mesh;
  /** A device id for an id, a name or an id prefix of a configured peer; throws UNKNOWN_PEER. */
  resolvePeer(reference: string): string;
  /** Whether the device's ACL lets `peerId` do `verb` on `resource`. */
  allows(peerId: string, verb: Verb, resource: string): Promise<boolean>;
  /** The device's databases: open one, replicate it with a peer, reach a peer's (the mesh's at MESH_PATH), and the work its stop waits for. */
  readonly databases: SyncDatabases;
}

export interface MeshSyncEvents {
  /** A session that did not fail, with one peer (or the cloud) and one database (or the mesh). */
  sync: [report: SyncReport];
  /** A session that failed (peer gone, refused, server down). Not "error": a peer dropping out is routine and must not end a process that has no listener. */
  failed: [err: Error, peer: string, database: string];
  state: [state: { running: number; paused: boolean }];
}

/** Sessions with one peer run in two lanes: the mesh's documents, and the replicated databases. */
type Lane = "mesh" | "databases";

/** When syncing "continuously", a round still runs this often (peers' new documents are pulled then). */
const CONTINUOUS_POLL_MS = 5_000;
const CHANGE_DEBOUNCE_MS = 50;

/**
 * Decides when to sync and with whom: on a peer coming into range, on the policy's interval, and (with
 * interval 0) shortly after anything new is stored. One session per peer at a time; pausable (battery).
 */
export class MeshSync extends EventEmitter<MeshSyncEvents> {
  private timer?: NodeJS.Timeout;
  private debounce?: NodeJS.Timeout;
  private readonly running = new Map<string, Promise<void>>();
  private readonly again = new Set<string>();
  private paused = false;
  private stopped = false;
  private readonly unsubscribe: Array<() => void> = [];

  constructor(private readonly host: SyncHost, private readonly options: MeshSyncOptions) {
    super();
  }

  start(): void {
    const onFound = (peer: { id: string }): void => this.syncPeer(peer.id);
    this.host.peerTable.on("found", onFound);
    this.unsubscribe.push(() => this.host.peerTable.off("found", onFound));
    // A hop takes up to one interval here: the mesh waits that long per hop for an ack before flooding.
    if (this.options.mesh) this.host.mesh.configure({ hopMs: this.options.policy.intervalMs });
    if (this.options.mesh && this.options.policy.intervalMs === 0) {
      const onStored = (): void => this.soon();
      this.host.mesh.on("stored", onStored);
      this.unsubscribe.push(() => this.host.mesh.off("stored", onStored));
    }
    this.schedule();
    this.syncAll();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.debounce);
    for (const off of this.unsubscribe.splice(0)) off();
    await Promise.all(this.running.values());
  }

  /** Stops starting sessions (a low battery); those under way finish. */
  pause(): void {
    this.paused = true;
    clearTimeout(this.timer);
    clearTimeout(this.debounce);
    this.emitState();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.schedule();
    this.syncAll();
    this.emitState();
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** A round now: every peer in range (and the cloud). */
  syncAll(): void {
    if (this.paused || this.stopped) return;
    for (const peer of this.peers()) this.syncPeer(peer);
    if (this.options.cloud) this.syncPeer(CLOUD_PEER);
  }

  /** Waits for the sessions under way (tests, and a flow's "sync now" that wants to know when it is done). */
  async settled(): Promise<void> {
    while (this.running.size > 0) await Promise.all(this.running.values());
  }

  private peers(): string[] {
    const inRange = this.host.peerTable.list().map((peer) => peer.id);
    const wanted = this.options.peers?.filter((peer) => peer.trim() !== "") ?? [];
    if (wanted.length === 0) return inRange;
    const ids = new Set(wanted.map((reference) => { try { return this.host.resolvePeer(reference); } catch { return undefined; } }));
    return inRange.filter((id) => ids.has(id));
  }

  private schedule(): void {
    clearTimeout(this.timer);
    if (this.paused || this.stopped) return;
    const interval = this.options.policy.intervalMs > 0 ? this.options.policy.intervalMs : CONTINUOUS_POLL_MS;
    this.timer = setTimeout(() => {
      this.syncAll();
      this.schedule();
    }, interval);
    this.timer.unref();
  }

  private soon(): void {
    if (this.paused || this.stopped) return;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => this.syncAll(), CHANGE_DEBOUNCE_MS);
    this.debounce.unref();
  }

  /**
   * Starts a session with `peer` in each lane, or marks a lane to run once more after the session under
   * way in it. Two lanes, so that store-and-forward messages never wait behind a long database
   * replication with the same peer (a first sync of 10,000 documents takes many seconds).
   */
  syncPeer(peer: string): void {
    if (!this.wants(peer)) return;
    if (this.options.mesh) this.runLane(peer, "mesh");
    if (this.options.databases.length > 0) this.runLane(peer, "databases");
  }

  /** Whether sessions with `peer` may start now: not paused or stopped, and within the peers the node names. */
  private wants(peer: string): boolean {
    if (this.paused || this.stopped) return false;
    return peer === CLOUD_PEER || !this.options.peers?.length || this.peers().includes(peer);
  }

  private runLane(peer: string, lane: Lane): void {
    const key = `${lane}\u0000${peer}`;
    if (this.running.has(key)) {
      this.again.add(key);
      return;
    }
    const session = (lane === "mesh" ? this.meshSession(peer) : this.databaseSession(peer)).finally(() => {
      this.running.delete(key);
      this.emitState();
      if (this.again.delete(key) && this.wants(peer)) this.runLane(peer, lane);
    });
    this.running.set(key, session);
    this.emitState();
  }

  private meshSession(peer: string): Promise<void> {
    return this.attempt(peer, "mesh", () => (peer === CLOUD_PEER ? this.cloudMesh() : this.peerMesh(peer)));
  }

  private async databaseSession(peer: string): Promise<void> {
    for (const name of this.options.databases) {
      if (this.stopped) return;
      await this.attempt(peer, name, () => (peer === CLOUD_PEER ? this.cloudDatabase(name) : this.peerDatabase(peer, name)));
    }
  }

  private async attempt(peer: string, database: string, run: () => Promise<SyncReport | undefined>): Promise<void> {
    try {
      const report = await run();
      if (report) this.emit("sync", report);
    } catch (err) {
      if (!this.stopped) this.emit("failed", err as Error, peer, database);
    }
  }

  /** Pushes what this device routes to the peer, then pulls what the peer routes here (it selects on its side). */
  private async peerMesh(peer: string): Promise<SyncReport | undefined> {
    if (!(await this.host.allows(peer, "relay", "mesh"))) return undefined;
    const mesh = this.host.mesh;
    const ids = mesh.selectFor(peer, { maxDocs: this.options.policy.maxDocs, maxBytes: this.options.policy.maxBytes });
    const sentRevs = mesh.revisionsOf(ids);
    const counter: ByteCounter = { sent: 0, received: 0 };
    const remote = this.host.databases.remote(peer, MESH_PATH, counter);
    try {
      const report = await this.host.databases.track(replicateOnce(mesh.database, remote, "both", { peer, database: "mesh" }, counter, { docIds: ids, checkpoint: false, pushFrom: mesh.sequenceFloor(ids) }));
      const refused = new Set(report.refused.map((refusal) => refusal.id));
      mesh.markPresent(peer, ids.filter((id) => !refused.has(id)), sentRevs);
      await mesh.noteNeighbour(peer);
      return report;
    } finally {
      await remote.close();
    }
  }

  private async peerDatabase(peer: string, name: string): Promise<SyncReport | undefined> {
    const resource = `db/${name}`;
    const [read, write] = await Promise.all([this.host.allows(peer, "read", resource), this.host.allows(peer, "write", resource)]);
    const direction = narrow(this.options.direction, read, write);
    if (!direction) return undefined;
    return this.host.databases.replicate(peer, name, direction);
  }

  /**
   * The cloud keeps everything: every live mesh document goes up, and what others left there comes down
   * (checked on the way in). Nobody else removes anything there, so each device prunes what it knows is
   * over: copies it removed since (acked by every recipient, or expired) and the expired or delivered
   * ones it just refused from the cloud.
   */
  private async cloudMesh(): Promise<SyncReport> {
    const cloud = this.options.cloud!;
    const mesh = this.host.mesh;
    const ids = mesh.selectFor(CLOUD_PEER, { maxDocs: this.options.policy.maxDocs, maxBytes: this.options.policy.maxBytes });
    const sentRevs = mesh.revisionsOf(ids);
    const { remote, counter } = this.cloudDatabaseNamed(cloud.meshDatabase ?? "peer-mesh");
    try {
      const report = await this.host.databases.track(replicateOnce(mesh.database, remote, "both", { peer: CLOUD_PEER, database: "mesh" }, counter, { docIds: ids, checkpoint: false, collectPulled: true, pushFrom: mesh.sequenceFloor(ids) }));
      // What the pull wrote, not what is new here since the session began: a message this device stored
      // meanwhile (a flow's send, a peer's relay) is not on the server yet.
      mesh.markPresent(CLOUD_PEER, ids, sentRevs);
      mesh.markPresent(CLOUD_PEER, report.pulledIds ?? []);
      delete report.pulledIds;
      // Copies this device refused as over (expired, delivered) stay on the server until someone prunes them.
      const over = report.refused.filter((refusal) => refusal.code === "expired" || refusal.code === "delivered").map((refusal) => refusal.id);
      report.pruned = await pruneCloud(remote, [...mesh.takeRemovedAt(CLOUD_PEER), ...over]);
      report.refused = report.refused.filter((refusal) => !over.includes(refusal.id));
      report.errors = report.refused.map(refusalText);
      report.bytesSent = counter.sent;
      report.bytesReceived = counter.received;
      return report;
    } finally {
      await remote.close();
    }
  }

  private async cloudDatabase(name: string): Promise<SyncReport> {
    const { remote, counter } = this.cloudDatabaseNamed(name);
    try {
      return await this.host.databases.track(replicateOnce(this.host.databases.open(name), remote, this.options.direction, { peer: CLOUD_PEER, database: name }, counter));
    } finally {
      await remote.close();
    }
  }

  /** A database on the cloud server, with a counter of the bytes its requests move. */
  private cloudDatabaseNamed(name: string): { remote: ReturnType<typeof remoteDatabase>; counter: ByteCounter } {
    const cloud = this.options.cloud!;
    const counter: ByteCounter = { sent: 0, received: 0 };
    return { remote: remoteDatabase(`${cloud.url.replace(/\/+$/, "")}/${name}`, { auth: cloud.auth, fetch: countingFetch(counter) }), counter };
  }

  private emitState(): void {
    this.emit("state", { running: this.running.size, paused: this.paused });
  }
}

/** Deletes these documents on the server where they are still live; returns how many. */
async function pruneCloud(remote: ReturnType<typeof remoteDatabase>, ids: string[]): Promise<number> {
  const unique = [...new Set(ids)];
  if (unique.length === 0) return 0;
  const found = await remote.allDocs({ keys: unique } as never);
  const live = (found.rows as Array<{ id: string; value?: { rev: string; deleted?: boolean } }>).filter((row) => row.value && !row.value.deleted);
  if (live.length === 0) return 0;
  const results = await remote.bulkDocs(live.map((row) => ({ _id: row.id, _rev: row.value!.rev, _deleted: true })));
  return results.filter((result) => "ok" in result && result.ok).length;
}

/** The direction wanted, narrowed to what this device's ACL lets the peer do. */
function narrow(direction: Direction, peerMayRead: boolean, peerMayWrite: boolean): Direction | undefined {
  const push = direction !== "pull" && peerMayRead;
  const pull = direction !== "push" && peerMayWrite;
  return push && pull ? "both" : push ? "push" : pull ? "pull" : undefined;
}
