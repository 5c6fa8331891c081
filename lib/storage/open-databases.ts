import fs from "node:fs";
import path from "node:path";
import { Database, openDatabase } from "./database";

/** The last 8 bytes of every LevelDB table file (table/format.h: kTableMagicNumber, little-endian). */
const TABLE_MAGIC = Buffer.from("57fb808b247547db", "hex");

/**
 * LevelDB opens a directory whose table files were cut short (a disk that filled or failed mid-write, a
 * copy interrupted) without a word, and fails later, on the first read that reaches the damage. A whole
 * table file ends with its footer's magic number; one that does not is reported now, at open, with the
 * path, like any other damage.
 */
function checkTableFiles(directory: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(directory);
  } catch {
    return; // a new database: nothing to check
  }
  const tail = Buffer.alloc(TABLE_MAGIC.length);
  for (const name of names.filter((file) => file.endsWith(".ldb") || file.endsWith(".sst"))) {
    const file = path.join(directory, name);
    const fd = fs.openSync(file, "r");
    try {
      const { size } = fs.fstatSync(fd);
      const read = size >= tail.length ? fs.readSync(fd, tail, 0, tail.length, size - tail.length) : 0;
      if (read !== tail.length || !tail.equals(TABLE_MAGIC)) throw new Error(`Corruption: the table file ${file} is truncated (${size} bytes, no table footer)`);
    } finally {
      fs.closeSync(fd);
    }
  }
}

/**
 * How long a database nobody uses stays open. A Node-RED full deploy closes every identity and starts it
 * again a moment later; within this time the new one takes over the open database, so LevelDB is not
 * closed and reopened (with the other side's sessions still arriving) on every deploy.
 */
export const LINGER_MS = 5_000;

interface Entry {
  db: Database;
  users: number;
  /** Resolves once LevelDB has opened (rejects with its error). */
  ready: Promise<void>;
  linger?: NodeJS.Timeout;
  /** Set once the close has begun: the next user waits for it and opens the directory afresh. */
  closing?: Promise<void>;
}

/** A use of an open database; release() once, when the user is done with it. */
export interface DatabaseLease {
  readonly db: Database;
  release(): void;
}

/**
 * One PouchDB per LevelDB directory in the process, shared by everyone who opens that directory, and closed
 * only after its last user let go and nobody took it up again for LINGER_MS.
 *
 * PouchDB's LevelDB adapter shares one LevelDB handle between the instances of one path until a close
 * completes; an instance made while another one's close is under way never finishes opening, and every
 * call on it waits forever (scripts/stress-restart.ts --overlap showed it: the restarted device hung in
 * start()). Here no instance is made while a close of the same directory is under way, and the devices of
 * one directory never close it under each other.
 */
const entries = new Map<string, Entry>();

export async function acquireDatabase(location: string): Promise<DatabaseLease> {
  const key = path.resolve(location);
  for (;;) {
    const entry = entries.get(key);
    if (entry?.closing) {
      await entry.closing;
      continue;
    }
    if (entry) {
      entry.users++;
      clearTimeout(entry.linger);
      entry.linger = undefined;
      try {
        await entry.ready;
      } catch (err) {
        entry.users--;
        throw err;
      }
      return lease(key, entry);
    }
    checkTableFiles(key);
    const created = open(key);
    entries.set(key, created);
    try {
      await created.ready;
    } catch (err) {
      // Nothing to close: LevelDB did not open. The next attempt (the user fixed the directory) starts afresh.
      if (entries.get(key) === created) entries.delete(key);
      throw err;
    }
    return lease(key, created);
  }
}

function open(key: string): Entry {
  const db = openDatabase(path.dirname(key), path.basename(key));
  return { db, users: 1, ready: db.info().then(() => undefined) };
}

function lease(key: string, entry: Entry): DatabaseLease {
  let released = false;
  return {
    db: entry.db,
    release: () => {
      if (released) return;
      released = true;
      entry.users--;
      if (entry.users > 0) return;
      entry.linger = setTimeout(() => void close(key, entry), LINGER_MS);
      entry.linger.unref(); // an idle database does not keep the process alive; LevelDB closes at exit
    },
  };
}

function close(key: string, entry: Entry): Promise<void> {
  clearTimeout(entry.linger);
  entry.linger = undefined;
  entry.closing ??= entry.db
    .close()
    .catch(() => undefined)
    .finally(() => {
      if (entries.get(key) === entry) entries.delete(key);
    });
  return entry.closing;
}

/**
 * Closes now every database no one uses (without waiting out the linger): before another process opens
 * the same directories, or at the end of a test that looks at the files.
 */
export async function closeIdleDatabases(): Promise<void> {
  await Promise.all([...entries].filter(([, entry]) => entry.users === 0).map(([key, entry]) => close(key, entry)));
}

/** How many databases are open in this process, and how many of them someone uses (for memory figures and tests). */
export function openDatabaseCount(): { open: number; inUse: number } {
  const all = [...entries.values()].filter((entry) => !entry.closing);
  return { open: all.length, inUse: all.filter((entry) => entry.users > 0).length };
}
