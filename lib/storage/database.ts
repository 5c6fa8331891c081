import fs from "node:fs";
import path from "node:path";
import leveldown from "leveldown";
import PouchDB from "pouchdb-node";
import { countChangesReads } from "./purge";

export type Database = PouchDB.Database;

/**
 * LevelDB's memory per open database, bounded for a gateway that keeps several: a 2 MiB block cache
 * (LevelDB's default is 8 MiB) and 128 open table files (1,000; each open table keeps its index and
 * filter blocks in memory). One busy database held 11.1 MB by LevelDB's own count at the defaults and
 * 5.1 MB with these (test/unit/leveldb-memory.test.ts).
 *
 * The write buffer stays at LevelDB's 4 MiB: with 1 MiB, a database filled its memtable while the disk
 * was full, the flush failed, and LevelDB then refused every write until it was reopened, even after
 * space was freed (the mesh-sync node's full-disk test caught it). With 4 MiB that takes a burst of
 * writes on a full disk; a device whose database reports such an error needs a restart (README, Limits).
 */
export const LEVELDB_OPTIONS = { cacheSize: 2 << 20, maxOpenFiles: 128 } as const;

/** LevelDB's write buffer (its default, kept: see above); a busy database holds up to two. */
export const LEVELDB_WRITE_BUFFER_BYTES = 4 << 20;

/** Every LevelDB handle PouchDB opened through openDatabase, for levelDbMemory(); closed ones are dropped as they are seen. */
const stores = new Set<ReturnType<typeof leveldown>>();
/** The latest LevelDB handle opened at each location, for reclaimSpace. */
const storeAt = new Map<string, ReturnType<typeof leveldown>>();

/** leveldown itself, but it remembers what it opened. PouchDB calls it for each new path and its destroy() to delete one. */
function countedLeveldown(location: string): ReturnType<typeof leveldown> {
  const store = leveldown(location);
  stores.add(store);
  storeAt.set(location, store);
  return store;
}
countedLeveldown.destroy = leveldown.destroy.bind(leveldown);

/** The native memory LevelDB holds for this process's open databases (block caches and write buffers), by its own count. */
export function levelDbMemory(): { databases: number; bytes: number } {
  let databases = 0;
  let bytes = 0;
  for (const store of stores) {
    if (store.status === "closed") {
      stores.delete(store);
      for (const [location, held] of storeAt) if (held === store) storeAt.delete(location);
      continue;
    }
    if (store.status !== "open") continue;
    databases++;
    bytes += Number(store.getProperty("leveldb.approximate-memory-usage")) || 0;
  }
  return { databases, bytes };
}

/** Above every key PouchDB writes (its keys are UTF-8 strings; 0xff never occurs in UTF-8). */
const PAST_LAST_KEY = Buffer.alloc(8, 0xff);

/**
 * Gives the disk space of removed data back: PouchDB's compaction drops the bodies of revisions that are
 * no longer leaves, then LevelDB compacts (compactStore).
 */
export async function reclaimSpace(db: Database): Promise<void> {
  await db.compact();
  await compactStore(db);
}

/**
 * LevelDB compacts its whole key range: the tables are rewritten without deleted entries (purged
 * documents, compacted revisions) and a new, empty log is started. Fast (about 150 ms for 10 MB), where
 * PouchDB's compaction visits every document changed since it last ran, one at a time.
 */
export async function compactStore(db: Database): Promise<void> {
  const store = levelStore(db);
  if (!store) return;
  await new Promise<void>((resolve, reject) => store.compactRange(Buffer.alloc(0), PAST_LAST_KEY, (err) => (err ? reject(err) : resolve())));
}

/** The LevelDB handle under a database opened here (undefined once closed): for compaction, and for tests that must hold a read open. */
export function levelStore(db: Database): ReturnType<typeof leveldown> | undefined {
  const store = storeAt.get(db.name);
  return store?.status === "open" ? store : undefined;
}

/** Bytes a database's directory takes on disk (its LevelDB files). */
export function databaseBytes(db: Database): number {
  let total = 0;
  let names: string[];
  try {
    names = fs.readdirSync(db.name);
  } catch {
    return 0;
  }
  for (const name of names) {
    try {
      total += fs.statSync(path.join(db.name, name)).size;
    } catch {
      // removed by LevelDB's compaction while counting
    }
  }
  return total;
}

/** Concurrent changes feeds on one database (sessions with neighbours and peers, listeners of the flow). */
const MAX_CONCURRENT_FEEDS = 200;

/**
 * A PouchDB (LevelDB) database in a directory of its own, for use outside a device. A device opens its
 * directories through acquireDatabase (open-databases.ts), which shares one open database per directory
 * in the process; do not open a running device's directories with this.
 */
export function openDatabase(directory: string, name: string): Database {
  fs.mkdirSync(directory, { recursive: true });
  // PouchDB hands its options to LevelDB's open.
  const db = new PouchDB(path.join(directory, name), { ...LEVELDB_OPTIONS, db: countedLeveldown });
  // Every replication reading this database holds a changes feed, and each feed listens for "destroyed"
  // until it ends. A relay syncing with many neighbours at once runs more than Node's default of 10.
  db.setMaxListeners(MAX_CONCURRENT_FEEDS);
  countChangesReads(db);
  return db;
}

/** A database on another device or server, reached over HTTP(S); `fetch` carries its requests (the wire, for peers). */
export function remoteDatabase(url: string, options: { fetch?: (url: string, init: PouchDB.FetchInit) => Promise<Response>; auth?: { username: string; password: string } } = {}): Database {
  const db = new PouchDB(url, { ...options, skip_setup: true });
  // PouchDB's replicator asks the source for info() after every batch, for a progress figure, and never
  // handles a failure: a peer that drops out mid-session would become an unhandled rejection and end the
  // process. Its HTTP adapter already answers info() with whatever the server said on an HTTP error; a
  // lost connection now answers with an empty info the same way. (The replication itself still fails and
  // is reported.)
  const info = db.info.bind(db);
  db.info = () => info().catch((): PouchDB.Info => ({ db_name: url, doc_count: 0, update_seq: 0 }));
  return db;
}

/**
 * Whether a storage error means the disk is full. LevelDB reports it as an "IO error: <path>: No space left
 * on device" with no code, Node's fs as ENOSPC. LevelDB keeps working once space is freed.
 */
export function isStorageFull(err: unknown): boolean {
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown };
  return code === "ENOSPC" || (typeof message === "string" && /no space left on device|ENOSPC/i.test(message));
}

const DATABASE_NAME = /^[a-z][a-z0-9_-]{0,63}$/;

/** Names a flow may give a replicated database: CouchDB's rules, narrowed to what is safe as a directory name. */
export function validateDatabaseName(name: unknown): string {
  if (typeof name !== "string" || !DATABASE_NAME.test(name)) {
    throw new Error(`"${String(name)}" is not a database name: use 1-64 lower-case letters, digits, _ and -, starting with a letter`);
  }
  return name;
}
