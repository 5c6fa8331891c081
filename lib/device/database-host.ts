import path from "node:path";
import type { Mesh } from "../mesh/mesh";
import type { CouchReply, CouchRequest } from "../protocol/couch";
import { WireError } from "../protocol/errors";
import { type Authorizer, DATABASE_PATH, type DatabaseTarget } from "../protocol/wire";
import { serveCouch } from "../replication/couch-endpoint";
import { refuseReplicatedDesignDocs } from "../replication/design-guard";
import { type Direction, replicateOnce, type ReplicateOptions, type SyncReport } from "../replication/replicator";
import { type ByteCounter, wireFetch } from "../replication/wire-fetch";
import { type Database, databaseBytes, reclaimSpace, remoteDatabase, validateDatabaseName } from "../storage/database";
import type { PurgeReason } from "./traffic";
import { acquireDatabase, type DatabaseLease } from "../storage/open-databases";
import { purgeDocuments, type PurgeResult } from "../storage/purge";
import { RetentionKeeper, type RetentionPolicy } from "../storage/retention";
import { describeStorageError, type StorageError } from "../storage/storage-error";
import type { ClientPool, PeerEndpoint } from "../wire/client-pool";

/** What the database host needs of its device. */
export interface DatabaseHostOptions {
  selfId: string;
  storageDir?: string;
  /** The databases the device keeps (options.databases). */
  names: string[];
  /** The device's authorizer at the time of the call (it can be replaced). */
  authorize: Authorizer;
  label(id: string): string;
  resolvePeer(reference: string): string;
  endpoint(peerId: string): PeerEndpoint;
  pool: ClientPool;
  /** The mesh store, when the device has storage. */
  mesh(): Mesh | undefined;
  /** Why the device's storage as a whole is unusable, if it is. */
  storageError(): StorageError | undefined;
  maxRequestBytes(): number;
  onStorageFull(database: string, err: Error): void;
  onWarning(err: StorageError): void;
  /** Documents purged from a database here (a cap, an age, or a flow). */
  onPurged?(database: string, reason: PurgeReason, count: number): void;
}

/** The databases a device keeps, as it offers them (`device.databases`): opened, replicated, and a peer's over the wire. */
export interface DeviceDatabases {
  /** A database this device keeps (one of options.databases). */
  open(name: string): Database;
  replicate(peer: string, name: string, direction: Direction, options?: ReplicateOptions): Promise<SyncReport>;
  /** Runs `work` on this device's databases; a stop waits for it (and refuses new work) before releasing them. */
  track<T>(work: Promise<T>): Promise<T>;
  /** Bytes each open database of this device takes on disk. */
  sizes(): Map<string, number>;
  /** A peer's database at `path` as a PouchDB, every request of it travelling over the wire. */
  remote(peerId: string, path: string, counter?: ByteCounter): Database;
  /** Removes documents from this device's copy only (peers keep theirs) and gives their space back. */
  purge(name: string, ids: readonly string[]): Promise<PurgeResult>;
  /** Keeps `name` within `policy` until the keeper is stopped (or the device stops). */
  retain(name: string, policy: RetentionPolicy): RetentionKeeper;
}

/**
 * The databases a device keeps and serves: opened (leased) at start, served to peers over the CouchDB
 * protocol as the ACL allows, replicated with peers, and released at stop only after every request
 * and replication under way has finished (LevelDB must not close under a write: a native crash).
 */
export class DatabaseHost implements DeviceDatabases {
  private readonly names: Set<string>;
  private readonly leases = new Map<string, DatabaseLease>();
  private readonly errors = new Map<string, StorageError>();
  private readonly work = new Set<Promise<unknown>>();
  private readonly keepers = new Set<RetentionKeeper>();
  private stopping = false;

  constructor(private readonly options: DatabaseHostOptions) {
    this.names = new Set(options.names.map(validateDatabaseName));
    if (this.names.size > 0 && !options.storageDir) throw new Error("databases need a storage directory (storageDir)");
  }

  /** Opens each configured database once at start, so that a damaged or locked one is reported now, with its path. */
  async openAll(): Promise<void> {
    for (const name of this.names) {
      const directory = path.join(this.options.storageDir!, "databases", name);
      try {
        const lease = await acquireDatabase(directory);
        refuseReplicatedDesignDocs(lease.db);
        this.leases.set(name, lease);
      } catch (err) {
        const failure = describeStorageError(err, directory);
        this.errors.set(name, failure);
        this.options.onWarning(failure);
      }
    }
  }

  /** From now on requests get 503 and replications CLOSED; the work under way goes on. */
  refuseNewWork(): void {
    this.stopping = true;
  }

  /** Waits for the work under way, then releases the databases (kept open a while for a device started again on them). */
  async drainAndRelease(): Promise<void> {
    this.refuseNewWork();
    await Promise.allSettled([...[...this.keepers].map((keeper) => keeper.stop()), ...this.work]);
    this.keepers.clear();
    for (const lease of this.leases.values()) lease.release();
  }

  open(name: string): Database {
    if (!this.names.has(name)) throw new WireError("NOT_FOUND", `this device keeps no database "${name}" (it keeps: ${[...this.names].join(", ") || "none"})`);
    const failure = this.options.storageError() ?? this.errors.get(name);
    if (failure) throw failure;
    const lease = this.leases.get(name);
    if (!lease) throw new WireError("CLOSED", this.stopping ? "the device has stopped" : "the device has not started yet");
    return lease.db;
  }

  /** A CouchDB-protocol request from a verified peer (the wire server's). */
  serve(peerId: string, target: DatabaseTarget, request: CouchRequest): Promise<CouchReply> {
    if (this.stopping) return Promise.resolve({ status: 503, json: { error: "unavailable", reason: "the device is stopping" } });
    return this.track(this.serveNow(peerId, target, request));
  }

  replicate(peer: string, name: string, direction: Direction, options: ReplicateOptions = {}): Promise<SyncReport> {
    return this.track(this.replicateNow(peer, name, direction, options));
  }

  track<T>(work: Promise<T>): Promise<T> {
    this.work.add(work);
    const done = (): boolean => this.work.delete(work);
    work.then(done, done);
    return work;
  }

  remote(peerId: string, path: string, counter?: ByteCounter): Database {
    const first = this.options.endpoint(peerId);
    return remoteDatabase(`https://${first.address}${path}`, { fetch: wireFetch(this.options.pool, () => this.options.endpoint(peerId), counter) });
  }

  sizes(): Map<string, number> {
    return new Map([...this.leases].map(([name, lease]) => [name, databaseBytes(lease.db)]));
  }

  purge(name: string, ids: readonly string[]): Promise<PurgeResult> {
    const db = this.open(name);
    return this.track(
      (async () => {
        const result = await purgeDocuments(db, ids);
        if (result.purged.length > 0) {
          this.options.onPurged?.(name, "flow", result.purged.length);
          await reclaimSpace(db);
        }
        return result;
      })(),
    );
  }

  retain(name: string, policy: RetentionPolicy): RetentionKeeper {
    const keeper = new RetentionKeeper(this.open(name), name, policy, (work) => this.track(work));
    this.keepers.add(keeper);
    keeper.once("stopped", () => this.keepers.delete(keeper));
    keeper.on("purged", (event) => this.options.onPurged?.(name, event.reason, event.purged));
    keeper.start();
    return keeper;
  }

  private async serveNow(peerId: string, target: DatabaseTarget, request: CouchRequest): Promise<CouchReply> {
    if (target.kind === "root") return { status: 200, json: { couchdb: "Welcome", uuid: this.options.selfId, vendor: { name: "peer-mesh" }, version: "3.0.0" } };
    if (target.kind === "mesh") return this.serveMesh(peerId, request);
    // The ACL first: a peer that may not use a database learns nothing of which ones exist.
    const resource = `db/${target.name}`;
    const authorize = this.options.authorize;
    const [read, write] = await Promise.all([authorize(peerId, "read", resource), authorize(peerId, "write", resource)]);
    if (!read && !write) return { status: 403, json: { error: "forbidden", reason: `device ${peerId} may neither read nor write ${resource}` } };
    let db: Database;
    try {
      db = this.open(target.name);
    } catch (err) {
      return { status: 404, json: { error: "not_found", reason: (err as Error).message } };
    }
    return serveCouch(db, request, { read, write }, { name: target.name, maxBodyBytes: this.options.maxRequestBytes(), onStorageFull: (err) => this.options.onStorageFull(target.name, err) });
  }

  /** The mesh database for a peer allowed to relay: it sees what this device routes to it, and its writes are checked. */
  private async serveMesh(peerId: string, request: CouchRequest): Promise<CouchReply> {
    const mesh = this.options.mesh();
    if (!mesh) return { status: 404, json: { error: "not_found", reason: "this device keeps no mesh store (no storage directory)" } };
    if (!(await this.options.authorize(peerId, "relay", "mesh"))) return { status: 403, json: { error: "forbidden", reason: `device ${peerId} may not relay mesh documents here` } };
    return serveCouch(mesh.database, request, { read: true, write: true }, {
      name: "mesh",
      maxBodyBytes: this.options.maxRequestBytes(),
      onStorageFull: (err) => this.options.onStorageFull("mesh", err),
      ingest: async (docs) => {
        void mesh.noteNeighbour(peerId);
        const results = await mesh.ingest(docs);
        mesh.heldBy(peerId, docs);
        return results;
      },
      visibleIds: () => {
        void mesh.noteNeighbour(peerId);
        return mesh.selectFor(peerId);
      },
      sequenceFloor: (ids) => mesh.sequenceFloor(ids),
    });
  }

  private async replicateNow(peer: string, name: string, direction: Direction, options: ReplicateOptions): Promise<SyncReport> {
    if (this.stopping) throw new WireError("CLOSED", "the device is stopping");
    const local = this.open(name);
    const id = this.options.resolvePeer(peer);
    const resource = `db/${name}`;
    const authorize = this.options.authorize;
    if (direction !== "pull" && !(await authorize(id, "read", resource))) throw new WireError("REFUSED", `this device's ACL does not let ${this.options.label(id)} read ${resource}`);
    if (direction !== "push" && !(await authorize(id, "write", resource))) throw new WireError("REFUSED", `this device's ACL does not let ${this.options.label(id)} write ${resource}`);
    const counter: ByteCounter = { sent: 0, received: 0 };
    const remote = this.remote(id, `${DATABASE_PATH}${name}`, counter);
    try {
      return await replicateOnce(local, remote, direction, { peer: id, database: name }, counter, options);
    } finally {
      await remote.close();
    }
  }
}
