import type { Database } from "./database";

/**
 * Purge for PouchDB's LevelDB adapter, which has none (pouchdb/pouchdb#802: only the browser's
 * indexeddb adapter implements `_purge`). A purged document is removed, not deleted: its entry, every
 * stored revision and the attachments no other revision uses are gone, no tombstone is written, and
 * no change is emitted, so nothing travels to peers and their copies stay as they are.
 *
 * The adapter keeps its stores and its write lock in a closure. The one way in is its compaction,
 * which accepts a transaction of the caller's (`opts.ctx`) and, once that transaction holds its batch
 * and no longer claims to be the caller's, executes it on the root LevelDB store while holding the
 * adapter's write lock. The purge runs there: under the same lock as every write, in one LevelDB batch,
 * with the adapter's cached document count kept right. This relies on pouchdb-node 9's adapter, which
 * package.json pins; test/unit/purge.test.ts fails if a new release changes it.
 */

/** A sublevel of the adapter's LevelDB store (sublevel-pouchdb). */
interface Sublevel {
  get(key: string, callback: (err: Error | null, value?: unknown) => void): void;
}

interface LevelOp {
  type: "put" | "del";
  key: string;
  value?: unknown;
  prefix: Sublevel;
}

/** The adapter's root store: the document count it caches, its sublevels, and atomic batches across them. */
interface RootStore {
  _docCount: number;
  sublevel(name: string): Sublevel;
  batch(ops: LevelOp[], callback: (err?: Error | null) => void): void;
}

interface StoredMetadata {
  id: string;
  deleted?: boolean;
  /** Each revision whose body is stored, and the sequence it is stored under. */
  rev_map: Record<string, number>;
}

interface StoredRevision {
  _attachments?: Record<string, { digest?: string }>;
}

interface CompactionTransaction {
  get(store: Sublevel, key: string, callback: (err: { name: string } | null, value?: unknown) => void): void;
  batch(ops: unknown[]): void;
  execute(root: RootStore, callback: (err?: Error | null) => void): void;
}

interface ChangesRequest {
  continuous?: boolean;
  complete?: (err: Error | null, result?: unknown) => void;
}

interface ChangesHandle {
  cancel(): void;
}

interface LevelAdapter {
  _doCompaction(docId: string, revs: string[], opts: { readonly ctx?: CompactionTransaction }, callback: (err?: Error | null) => void): void;
  _changes(opts: ChangesRequest): ChangesHandle;
}

/**
 * The adapter's changes feed reads its sequence index through a LevelDB snapshot and then looks each
 * document up as it is now; a document purged in between is one it cannot find, and it throws (an
 * uncaught TypeError that would end the process). Every other read holds the adapter's read lock, which
 * a purge's write lock excludes. So a purge waits until no changes read is under way and holds new ones
 * back until it is done.
 */
interface ReadGate {
  active: number;
  closed: boolean;
  held: Array<() => void>;
  idle: Array<() => void>;
}

const gates = new WeakMap<object, ReadGate>();

/** How long a purge waits for the changes reads under way before it gives up (and changes nothing). */
const READS_WAIT_MS = 30_000;
/** The wait above, which tests shorten (they cannot hold a changes read open for 30 s). */
export const readsWait = { ms: READS_WAIT_MS };

function gateOf(adapter: LevelAdapter): ReadGate {
  const existing = gates.get(adapter);
  if (existing) return existing;
  const gate: ReadGate = { active: 0, closed: false, held: [], idle: [] };
  gates.set(adapter, gate);
  const original = adapter._changes.bind(adapter);
  const start = (opts: ChangesRequest): ChangesHandle => {
    gate.active++;
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      if (--gate.active === 0) for (const wake of gate.idle.splice(0)) wake();
    };
    const complete = opts.complete;
    const handle = original({ ...opts, complete: (err, result) => (finish(), complete?.(err, result)) });
    return { cancel: () => (finish(), handle.cancel()) };
  };
  adapter._changes = (opts) => {
    // A live feed only registers a listener; its reads come back through here, one at a time.
    if (opts.continuous) return original(opts);
    if (!gate.closed) return start(opts);
    let handle: ChangesHandle | undefined;
    let cancelled = false;
    gate.held.push(() => {
      if (!cancelled) handle = start(opts);
    });
    return {
      cancel: () => {
        cancelled = true;
        handle?.cancel();
      },
    };
  };
  return gate;
}

/**
 * Counts the changes reads of `db` from now on, so that a purge can wait for them: called as the database
 * opens (openDatabase), since a read that began before would not be counted.
 */
export function countChangesReads(db: Database): void {
  const adapter = db as unknown as Partial<LevelAdapter>;
  if (typeof adapter._changes === "function") gateOf(adapter as LevelAdapter);
}

/**
 * Runs `work` with no changes read under way or starting. Reads still under way after READS_WAIT_MS
 * make it refuse (a purge must not run under one), or, with `whenReadsLast` "start anyway", start with them.
 */
async function withChangesReadsHeld<T>(adapter: LevelAdapter, work: () => Promise<T>, whenReadsLast: "refuse" | "start anyway" = "refuse"): Promise<T> {
  const gate = gateOf(adapter);
  // One purge at a time: a second waits for the first to open the gate again.
  while (gate.closed) await new Promise<void>((resolve) => gate.held.push(resolve));
  gate.closed = true;
  try {
    if (gate.active > 0) {
      let timer: NodeJS.Timeout | undefined;
      const idle = new Promise<void>((resolve) => gate.idle.push(resolve));
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`purge: the database's changes feed was read for over ${readsWait.ms / 1000} s; nothing was purged, try again`)), readsWait.ms);
      });
      try {
        await Promise.race([idle, whenReadsLast === "refuse" ? timeout : timeout.catch(() => undefined)]);
      } finally {
        clearTimeout(timer);
      }
    }
    return await work();
  } finally {
    gate.closed = false;
    for (const release of gate.held.splice(0)) release();
  }
}

// The adapter's own names (pouchdb-adapter-leveldb-core).
const DOC_STORE = "document-store";
const BY_SEQ_STORE = "by-sequence";
const ATTACHMENT_STORE = "attach-store";
const BINARY_STORE = "attach-binary-store";
const META_STORE = "meta-store";
const DOC_COUNT_KEY = "_local_doc_count";

export interface PurgeResult {
  /** Documents removed, with every revision. */
  purged: string[];
  /** Ids this database did not hold. */
  missing: string[];
  /** With `onlyDeleted` only: documents left as they are because they are live (written again since their deletion). */
  live?: string[];
}

export interface PurgeOptions {
  /**
   * Purge a document only while it is deleted (its winning revision a tombstone), decided under the
   * write lock: a tombstone that a replication brought back to life in the meantime stays.
   */
  onlyDeleted?: boolean;
  /**
   * Work done once the purge is written and before changes reads go on: LevelDB's compaction
   * (compactStore). A read under way while LevelDB compacts keeps the tables the compaction replaced on
   * disk until LevelDB's next compaction, so a size measured after it would count them (the retention
   * keeper then purged past its target).
   */
  whileReadsHeld?: () => Promise<void>;
}

/**
 * Runs `compact` (LevelDB's compaction, compactStore) with no changes read of `db` under way or starting:
 * a read that overlaps a compaction keeps the tables it replaced on disk until LevelDB's next compaction,
 * and a size measured then counts them twice. It waits at most READS_WAIT_MS for the reads under way,
 * and new reads wait at most as long for it; past that, each goes on beside the other.
 */
export function compactWithReadsHeld(db: Database, compact: () => Promise<void>): Promise<void> {
  // Reads that outlast READS_WAIT_MS do not stop the compaction, which ran beside them before.
  return withChangesReadsHeld(gatedAdapter(db), () => boundedHold(compact()), "start anyway");
}

/** `work`, or its end left to run on its own once the reads have waited READS_WAIT_MS for it. */
async function boundedHold(work: Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const released = new Promise<void>((resolve) => (timer = setTimeout(resolve, readsWait.ms).unref()));
  // A failure after the release is not reported: the reads went on, and the next compaction meets the same fault.
  work.catch(() => undefined);
  try {
    await Promise.race([work, released]);
  } finally {
    clearTimeout(timer);
  }
}

function gatedAdapter(db: Database): LevelAdapter {
  const adapter = db as unknown as Partial<LevelAdapter>;
  if (typeof adapter._doCompaction !== "function" || typeof adapter._changes !== "function") throw new Error(`purge needs PouchDB's LevelDB adapter; ${db.name} uses another`);
  if (!gates.has(adapter)) throw new Error(`purge: ${db.name} was not opened with openDatabase, which counts its changes reads`);
  return adapter as LevelAdapter;
}

/**
 * Removes the documents `ids` from `db` entirely (all revisions, conflicts included), locally only.
 * The space is given back by reclaimSpace (database.ts) once LevelDB compacts.
 */
export async function purgeDocuments(db: Database, ids: readonly string[], options: PurgeOptions = {}): Promise<PurgeResult> {
  const unique = [...new Set(ids)];
  if (unique.length === 0) return purgeResult([], [], [], options);
  if (unique.some((id) => typeof id !== "string" || id.startsWith("_local/") || id === "")) throw new Error("purge takes document ids (strings, not _local documents)");
  const adapter = gatedAdapter(db);
  return withChangesReadsHeld(adapter, async () => {
    const result = await purgeWithLock(adapter, unique, options);
    if (result.purged.length > 0 && options.whileReadsHeld) await boundedHold(options.whileReadsHeld());
    return result;
  });
}

function purgeWithLock(adapter: LevelAdapter, unique: string[], options: PurgeOptions): Promise<PurgeResult> {
  return new Promise<PurgeResult>((resolve, reject) => {
    let result: PurgeResult | undefined;
    let batchHanded = false;
    let documentRead = false;
    const transaction: CompactionTransaction = {
      // The compaction is asked to compact a revision of the first id. Its first read, of the document, is
      // told there is one with no revisions stored ("no such document" would end it early); the reads that
      // follow, of stored revisions, find nothing.
      get: (_store, key, callback) => {
        if (documentRead) return process.nextTick(callback, { name: "NotFoundError" });
        documentRead = true;
        process.nextTick(callback, null, { id: key, rev_map: {}, rev_tree: [] });
      },
      batch: () => {
        batchHanded = true;
      },
      execute: (root, callback) => {
        if (typeof root?.sublevel !== "function" || typeof root._docCount !== "number" || typeof root.batch !== "function") {
          callback(new Error("purge: PouchDB's LevelDB adapter is not the one this code knows (pouchdb-node 9)"));
          return;
        }
        purgeUnderLock(root, unique, options).then((done) => {
          result = done;
          callback();
        }, callback);
      },
    };
    const opts = {
      get ctx(): CompactionTransaction | undefined {
        return batchHanded ? undefined : transaction;
      },
    };
    adapter._doCompaction(unique[0], ["0-peer-mesh-purge"], opts, (err) => {
      if (err) reject(err);
      else if (!result) reject(new Error("purge: PouchDB's LevelDB adapter did not run the purge (pouchdb-node 9 expected)"));
      else resolve(result);
    });
  });
}

function read<T>(store: Sublevel, key: string): Promise<T | undefined> {
  return new Promise((resolve, reject) =>
    store.get(key, (err, value) => {
      if (!err) resolve(value as T);
      else if (err.name === "NotFoundError") resolve(undefined);
      else reject(err);
    }),
  );
}

async function purgeUnderLock(root: RootStore, ids: string[], options: PurgeOptions): Promise<PurgeResult> {
  const docStore = root.sublevel(DOC_STORE);
  const bySeqStore = root.sublevel(BY_SEQ_STORE);
  const attachmentStore = root.sublevel(ATTACHMENT_STORE);
  const binaryStore = root.sublevel(BINARY_STORE);
  const metaStore = root.sublevel(META_STORE);
  const ops: LevelOp[] = [];
  const purged: string[] = [];
  const missing: string[] = [];
  const live: string[] = [];
  /** Attachment digest → the references (`<doc id>@<rev>`) that go. */
  const droppedRefs = new Map<string, Set<string>>();
  let liveRemoved = 0;
  // Reads in parallel (LevelDB answers them on its thread pool); the batch that follows is one write.
  const metadatas = await Promise.all(ids.map((id) => read<StoredMetadata>(docStore, id)));
  const revisions: Array<{ id: string; rev: string; key: string }> = [];
  ids.forEach((id, i) => {
    const metadata = metadatas[i];
    if (!metadata) {
      missing.push(id);
      return;
    }
    if (options.onlyDeleted && metadata.deleted !== true) {
      live.push(id);
      return;
    }
    purged.push(id);
    // PouchDB stores whether the winning revision is deleted with every write of a document.
    if (metadata.deleted !== true) liveRemoved++;
    ops.push({ type: "del", key: id, prefix: docStore });
    for (const [rev, seq] of Object.entries(metadata.rev_map ?? {})) revisions.push({ id, rev, key: formatSeq(seq) });
  });
  const bodies = await Promise.all(revisions.map(({ key }) => read<StoredRevision>(bySeqStore, key)));
  revisions.forEach(({ id, rev, key }, i) => {
    ops.push({ type: "del", key, prefix: bySeqStore });
    for (const attachment of Object.values(bodies[i]?._attachments ?? {})) {
      if (!attachment.digest) continue;
      const refs = droppedRefs.get(attachment.digest) ?? new Set<string>();
      refs.add(`${id}@${rev}`);
      droppedRefs.set(attachment.digest, refs);
    }
  });
  for (const [digest, dropped] of droppedRefs) {
    const stored = await read<{ refs?: Record<string, boolean> }>(attachmentStore, digest);
    const kept = Object.keys(stored?.refs ?? {}).filter((ref) => !dropped.has(ref));
    if (kept.length > 0) ops.push({ type: "put", key: digest, value: { refs: Object.fromEntries(kept.map((ref) => [ref, true])) }, prefix: attachmentStore });
    else ops.push({ type: "del", key: digest, prefix: attachmentStore }, { type: "del", key: digest, prefix: binaryStore });
  }
  if (purged.length === 0) return purgeResult(purged, missing, live, options);
  const docCount = Math.max(0, root._docCount - liveRemoved);
  ops.push({ type: "put", key: DOC_COUNT_KEY, value: docCount, prefix: metaStore });
  await new Promise<void>((resolve, reject) => root.batch(ops, (err) => (err ? reject(err) : resolve())));
  root._docCount = docCount;
  return purgeResult(purged, missing, live, options);
}

/** What a purge reports: `live` only when `onlyDeleted` asked, as it is meaningless otherwise. */
function purgeResult(purged: string[], missing: string[], live: string[], options: PurgeOptions): PurgeResult {
  return options.onlyDeleted ? { purged, missing, live } : { purged, missing };
}

/** The adapter's key for a sequence number (16 digits). */
function formatSeq(seq: number): string {
  return String(seq).padStart(16, "0");
}
