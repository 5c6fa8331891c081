import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { openDatabase, type Database } from "../../lib";

/** Temporary directories removed by removeAll, even when a test failed halfway. */
export class TempDirs {
  private readonly dirs: string[] = [];

  make(prefix = "peer-mesh-"): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    this.dirs.push(dir);
    return dir;
  }

  removeAll(): void {
    for (const dir of this.dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Fresh PouchDB databases in temporary directories for the current suite, closed and removed after
 * each test: call inside a describe().
 */
export function useTempDatabases(): () => Database {
  const dirs = new TempDirs();
  const opened: Database[] = [];
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((db) => db.close().catch(() => undefined)));
    dirs.removeAll();
  });
  return () => {
    const db = openDatabase(dirs.make(), "db");
    opened.push(db);
    return db;
  };
}

/**
 * Records where each of `db`'s one-off changes reads starts (its `since`; live feeds are left out), until
 * `restore` puts the database's own `changes` back.
 */
export function recordChangesReads(db: Database): { since: unknown[]; restore(): void } {
  const since: unknown[] = [];
  const changes = db.changes.bind(db);
  db.changes = ((options?: { since?: unknown; live?: boolean }) => {
    // A live feed is not a read of its own, and neither are the reads PouchDB makes for it at each change
    // it is told of (its `eventFunction` calls db.changes without `live`): a mesh's feed catching up could
    // land one inside a test's window, and a test counting reads saw two (once, under load).
    if (!options?.live && !/\beventFunction\b/.test(new Error().stack ?? "")) since.push(options?.since);
    return changes(options as never);
  }) as typeof db.changes;
  return { since, restore: () => void (db.changes = changes) };
}

/**
 * Makes `db`'s live changes feeds (opened from now on) hand each change on `ms` later, in order: a
 * loaded machine's feed, which runs behind the writes. What a test waits for then has to be the change
 * itself, not something that holds true earlier by chance.
 */
export function delayLiveFeeds(db: Database, ms: number): void {
  const changes = db.changes.bind(db);
  db.changes = ((options?: { live?: boolean }) => {
    const feed = changes(options as never) as unknown as { emit(event: string, ...args: unknown[]): boolean; isCancelled?: boolean };
    if (options?.live) {
      const emit = feed.emit.bind(feed);
      feed.emit = (event: string, ...args: unknown[]): boolean => {
        if (event !== "change") return emit(event, ...args);
        // A change still on its way when the feed is cancelled (its listener stopped) is dropped, as a real feed's would be.
        setTimeout(() => feed.isCancelled || emit(event, ...args), ms);
        return true;
      };
    }
    return feed;
  }) as unknown as typeof db.changes;
}
