import path from "node:path";
import type { Acl } from "../acl/acl";
import { AclStore } from "../acl/acl-store";
import { PairedPeers } from "../acl/paired-peers";
import type { GroupDoc } from "../acl/signed-group";
import { Mesh, type MeshOptions } from "../mesh/mesh";
import type { Database } from "../storage/database";
import { acquireDatabase, type DatabaseLease } from "../storage/open-databases";
import { describeStorageError, type StorageError } from "../storage/storage-error";

/**
 * A device's own records in <storageDir>/system: its groups (AclStore), its pairings (PairedPeers) and
 * the mesh store. Storage that cannot be used (locked by another process, damaged) does not stop the
 * device: it runs on without these, and `error` says where and what to do.
 */
export class SystemStorage {
  private lease?: DatabaseLease;
  private acl?: AclStore;
  /** Confirmed pairings, when the storage is usable. */
  paired?: PairedPeers;
  /** The mesh store, once started. */
  mesh?: Mesh;
  /** Why the storage cannot be used, when it cannot. */
  error?: StorageError;

  constructor(
    private readonly storageDir: string | undefined,
    private readonly onFailed: (err: StorageError) => void,
  ) {}

  private get directory(): string {
    return path.join(this.storageDir!, "system");
  }

  /** The system database, while the storage is usable. */
  get database(): Database | undefined {
    return this.lease?.db;
  }

  /** Opens the database and loads the stored groups into `acl` and the pairings. */
  async open(acl: Acl): Promise<void> {
    if (!this.storageDir) return;
    try {
      this.lease = await acquireDatabase(this.directory);
      this.acl = new AclStore(this.lease.db, acl);
      await this.acl.open();
      this.paired = new PairedPeers(this.lease.db);
      await this.paired.load();
    } catch (err) {
      await this.fail(err);
    }
  }

  /** Keeps a group document this device signed (in memory only without storage). */
  async saveGroup(group: GroupDoc): Promise<void> {
    await this.acl?.save(group);
  }

  /** Starts the mesh store on the system database; a failure to do so is a storage failure. */
  async startMesh(options: Omit<MeshOptions, "db">, wire: (mesh: Mesh) => void): Promise<void> {
    const db = this.database;
    if (!db) return;
    this.mesh = new Mesh({ ...options, db });
    wire(this.mesh);
    await this.mesh.start().catch((err: unknown) => this.fail(err));
  }

  /** Stops the mesh, closes the stores and releases the database (kept open a while for a device started again on it). */
  async close(): Promise<void> {
    await this.mesh?.stop();
    await this.acl?.close();
    await this.paired?.close().catch(() => undefined);
    this.lease?.release();
  }

  private async fail(err: unknown): Promise<void> {
    this.error = describeStorageError(err, this.directory);
    await this.mesh?.stop().catch(() => undefined);
    await this.acl?.close().catch(() => undefined);
    this.lease?.release();
    this.lease = undefined;
    this.mesh = undefined;
    this.acl = undefined;
    this.paired = undefined;
    this.onFailed(this.error);
  }
}
