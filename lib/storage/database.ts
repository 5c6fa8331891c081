import fs from "node:fs";
import path from "node:path";
import PouchDB from "pouchdb-node";

export type Database = PouchDB.Database;

/** Concurrent changes feeds on one database (sessions with neighbours and peers, listeners of the flow). */
const MAX_CONCURRENT_FEEDS = 200;

/**
 * A PouchDB (LevelDB) database in a directory of its own, for use outside a device. A device opens its
 * directories through acquireDatabase (open-databases.ts), which shares one open database per directory
 * in the process; do not open a running device's directories with this.
 */
export function openDatabase(directory: string, name: string): Database {
  fs.mkdirSync(directory, { recursive: true });
  const db = new PouchDB(path.join(directory, name));
  // Every replication reading this database holds a changes feed, and each feed listens for "destroyed"
  // until it ends. A relay syncing with many neighbours at once runs more than Node's default of 10.
  db.setMaxListeners(MAX_CONCURRENT_FEEDS);
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
