import type { Database } from "./database";

/**
 * A retention keeper measures after writes arrive and purges after it has measured; a writer faster than
 * its check (a replication catching up a backlog, a flow in a loop) filled a 16.8 MB database to 93–143 MB
 * before the first purge ended (test/unit/retention.test.ts). So while the keeper purges a database that
 * is over its cap, writes into it wait.
 *
 * The hook is the adapter's `_bulkDocs`: every document write (put, post, remove, bulkDocs, and the
 * replicator's new_edits=false batches) passes it, and nothing of the keeper's own work does (purge and
 * compaction go through `_doCompaction`, replication checkpoints through `_putLocal`), so a hold cannot
 * wait for itself. A write held here holds no lock: reads, changes feeds and the purge go on.
 */

/** A hold ends by itself after this long, so a purge that stalls degrades to the cap being exceeded, never to writes that hang. Well under the wire's 30 s silence allowance for a peer's replication request. */
export const MAX_WRITE_HOLD_MS = 10_000;

type BulkDocs = (request: unknown, options: unknown, callback: unknown) => void;

interface HoldState {
  holds: number;
  waiting: Array<() => void>;
}

const STATE = Symbol("peer-mesh.writeHold");

interface Holdable {
  _bulkDocs: BulkDocs;
  [STATE]?: HoldState;
}

/** The database's hold state; its writes pass through the hold from the first call on (one wrapper per database object). */
function stateOf(db: Database): HoldState {
  const target = db as unknown as Holdable;
  const known = target[STATE];
  if (known) return known;
  const state: HoldState = { holds: 0, waiting: [] };
  const original = target._bulkDocs.bind(db);
  target._bulkDocs = (request, options, callback) => {
    if (state.holds === 0) return original(request, options, callback);
    state.waiting.push(() => original(request, options, callback));
  };
  target[STATE] = state;
  return state;
}

/** A hold on a database's writes; it ends at release() or after MAX_WRITE_HOLD_MS, whichever comes first. */
export interface WriteHold {
  readonly active: boolean;
  release(): void;
}

/** Writes into `db` wait from now until the hold ends, then go on in the order they came. */
export function holdWrites(db: Database, maxMs = MAX_WRITE_HOLD_MS): WriteHold {
  const state = stateOf(db);
  state.holds++;
  let active = true;
  const release = (): void => {
    if (!active) return;
    active = false;
    clearTimeout(timer);
    if (--state.holds > 0) return;
    for (const write of state.waiting.splice(0)) write();
  };
  const timer = setTimeout(release, maxMs);
  timer.unref();
  return {
    get active() {
      return active;
    },
    release,
  };
}

/** Writes waiting for a hold to end (for tests: none may be left waiting). */
export function heldWrites(db: Database): number {
  return (db as unknown as Holdable)[STATE]?.waiting.length ?? 0;
}
