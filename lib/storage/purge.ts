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

interface LevelAdapter {
  _doCompaction(docId: string, revs: string[], opts: { readonly ctx?: CompactionTransaction }, callback: (err?: Error | null) => void): void;
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
}

/**
 * Removes the documents `ids` from `db` entirely (all revisions, conflicts included), locally only.
 * The space is given back by reclaimSpace (database.ts) once LevelDB compacts.
 */
export async function purgeDocuments(db: Database, ids: readonly string[]): Promise<PurgeResult> {
  const unique = [...new Set(ids)];
  if (unique.length === 0) return { purged: [], missing: [] };
  if (unique.some((id) => typeof id !== "string" || id.startsWith("_local/") || id === "")) throw new Error("purge takes document ids (strings, not _local documents)");
  const adapter = db as unknown as Partial<LevelAdapter>;
  if (typeof adapter._doCompaction !== "function") throw new Error(`purge needs PouchDB's LevelDB adapter; ${db.name} uses another`);
  return new Promise<PurgeResult>((resolve, reject) => {
    let result: PurgeResult | undefined;
    let batchHanded = false;
    const transaction: CompactionTransaction = {
      // The compaction below is asked to compact a revision no document has: it finds nothing to read.
      get: (_store, _key, callback) => process.nextTick(callback, { name: "NotFoundError" }),
      batch: () => {
        batchHanded = true;
      },
      execute: (root, callback) => {
        if (typeof root?.sublevel !== "function" || typeof root._docCount !== "number" || typeof root.batch !== "function") {
          callback(new Error("purge: PouchDB's LevelDB adapter is not the one this code knows (pouchdb-node 9)"));
          return;
        }
        purgeUnderLock(root, unique).then((done) => {
          result = done;
          callback();
        }, callback);
      },
    };
    // The compaction's own document read: answered as "no such document" would end it early, so it is
    // told there is one, with no revisions stored.
    const first: CompactionTransaction = {
      ...transaction,
      get: (store, key, callback) => {
        if (key === unique[0] && !batchHanded) return process.nextTick(callback, null, { id: key, rev_map: {}, rev_tree: [] });
        transaction.get(store, key, callback);
      },
    };
    const opts = {
      get ctx(): CompactionTransaction | undefined {
        return batchHanded ? undefined : first;
      },
    };
    adapter._doCompaction!(unique[0], ["0-peer-mesh-purge"], opts, (err) => {
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

async function purgeUnderLock(root: RootStore, ids: string[]): Promise<PurgeResult> {
  const docStore = root.sublevel(DOC_STORE);
  const bySeqStore = root.sublevel(BY_SEQ_STORE);
  const attachmentStore = root.sublevel(ATTACHMENT_STORE);
  const binaryStore = root.sublevel(BINARY_STORE);
  const metaStore = root.sublevel(META_STORE);
  const ops: LevelOp[] = [];
  const purged: string[] = [];
  const missing: string[] = [];
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
  if (purged.length === 0) return { purged, missing };
  const docCount = Math.max(0, root._docCount - liveRemoved);
  ops.push({ type: "put", key: DOC_COUNT_KEY, value: docCount, prefix: metaStore });
  await new Promise<void>((resolve, reject) => root.batch(ops, (err) => (err ? reject(err) : resolve())));
  root._docCount = docCount;
  return { purged, missing };
}

/** The adapter's key for a sequence number (16 digits). */
function formatSeq(seq: number): string {
  return String(seq).padStart(16, "0");
}
