import { EventEmitter } from "node:events";
import PouchDB from "pouchdb-node";
import type { RefusalCode } from "../protocol/couch";
import type { Database } from "../storage/database";
import type { ByteCounter } from "./wire-fetch";

export type Direction = "push" | "pull" | "both";

/** What one replication session did, for a flow's sync events. */
export interface SyncReport {
  peer: string;
  database: string;
  direction: Direction;
  docsRead: number;
  docsWritten: number;
  /** Documents the other side refused (ACL, validation) or that failed to write. */
  failures: number;
  /** Each refused document with the code the refusing side gave (mesh ingest's RefusalCode), for code to act on. */
  refused: Array<{ id: string; code?: RefusalCode; reason: string }>;
  bytesSent: number;
  bytesReceived: number;
  errors: string[];
  /** Mesh documents removed from a cloud server because they are over (acked by all, or expired). */
  pruned?: number;
  /** The ids the pull wrote here, when asked for (collectPulled). */
  pulledIds?: string[];
}

/** A refused document as the report's errors list it: "<id> refused: <reason>". */
export function refusalText(refusal: { id: string; reason: string }): string {
  return `${refusal.id || "a document"} refused: ${refusal.reason}`;
}

export interface ReplicateOptions {
  /** Only these documents (the mesh's routed selection). */
  docIds?: string[];
  /** Off for selections that change between sessions, so a document held back once is not skipped for good. */
  checkpoint?: boolean;
  batchSize?: number;
  /** Report which documents the pull wrote (pulledIds): what the other side is known to hold. */
  collectPulled?: boolean;
  /**
   * With docIds and no checkpoint: a local sequence below each of docIds' latest writes
   * (Mesh.sequenceFloor). The push reads the local changes from there; without it PouchDB reads the
   * whole store from 0 for a handful of documents, every session.
   */
  pushFrom?: number;
}

/**
 * One replication session in one or both directions between a local database and a remote one (a peer
 * through the wire, or a CouchDB-protocol server), using PouchDB's own replicator.
 */
export async function replicateOnce(local: Database, remote: Database, direction: Direction, report: { peer: string; database: string }, counter: ByteCounter, options: ReplicateOptions = {}): Promise<SyncReport> {
  const result: SyncReport = { ...report, direction, docsRead: 0, docsWritten: 0, failures: 0, bytesSent: 0, bytesReceived: 0, errors: [], refused: [] };
  const before = { ...counter };
  const base: PouchDB.ReplicateOptions = {
    batch_size: options.batchSize ?? 100,
    ...(options.checkpoint === false ? { checkpoint: false } : {}),
  };
  const run = async (source: Database, target: Database, docIds?: string[], written?: string[]): Promise<void> => {
    if (docIds && docIds.length === 0) return;
    const replication = PouchDB.replicate(source, target, { ...base, ...(docIds ? { doc_ids: docIds } : {}) });
    replication.on("denied", (err) => {
      const denied = err as { id?: string; reason?: string; message?: string; code?: RefusalCode };
      const refusal = { id: denied.id ?? "", code: denied.code, reason: denied.reason ?? denied.message ?? "forbidden" };
      result.refused.push(refusal);
      result.errors.push(refusalText(refusal));
    });
    if (written) replication.on("change", (info) => written.push(...(info.docs ?? []).map((doc) => doc._id)));
    const outcome = await replication;
    result.docsRead += outcome.docs_read;
    result.docsWritten += outcome.docs_written;
    result.failures += outcome.doc_write_failures;
  };
  try {
    if (direction !== "pull") await run(pushSource(local, options.pushFrom ?? 0), remote, options.docIds);
    if (direction !== "push") await run(remote, local, undefined, options.collectPulled ? (result.pulledIds = []) : undefined);
  } finally {
    result.bytesSent = counter.sent - before.sent;
    result.bytesReceived = counter.received - before.received;
  }
  return result;
}

type ChangesFeed = ReturnType<Database["changes"]>;
type ChangesResult = Awaited<ChangesFeed>;

/**
 * The local database as a push reads it:
 * - **Its changes reads start no lower than `floor`.** PouchDB's replicator starts its read at its
 *   checkpoint (0 without one) and ignores a `since` option, so the floor goes in through the source.
 * - **A read's page of changes reaches the replicator whole, when the read ends.** The replicator takes
 *   what has arrived so far as its next batch whenever it has none queued, and a local changes read hands
 *   its changes over one LevelDB read at a time, slower than a peer answers a batch. So a push of 10,000
 *   documents went as 488 batches of about 20, each with its four requests (checkpoint read, revs_diff,
 *   bulk_docs, checkpoint write); whole pages make them 100 batches of `batch_size`.
 * Every other member is the database's own, bound to it, so the replicator's events and tasks land on it.
 */
function pushSource(db: Database, floor: number): Database {
  const changes = ((options?: PouchDB.ChangesOptions) => {
    const since: unknown = options?.since ?? 0;
    const read = db.changes({ ...options, since: typeof since === "number" ? Math.max(since, floor) : since } as never);
    return options?.live ? read : wholePage(read);
  }) as Database["changes"];
  return new Proxy(db, {
    get(target, property) {
      if (property === "changes") return changes;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** A one-off changes read whose "change" events come all at once, when the read has ended. */
function wholePage(read: ChangesFeed): ChangesFeed {
  const held: unknown[][] = [];
  read.on("change", (...args: unknown[]) => void held.push(args));
  const page = new EventEmitter();
  const ended: Promise<ChangesResult> = Promise.resolve(read).then((result) => {
    for (const args of held) page.emit("change", ...args);
    return result;
  });
  return Object.assign(page, {
    cancel: () => read.cancel(),
    then: ended.then.bind(ended),
    catch: ended.catch.bind(ended),
    finally: ended.finally.bind(ended),
    [Symbol.toStringTag]: "Promise",
  }) as unknown as ChangesFeed;
}
