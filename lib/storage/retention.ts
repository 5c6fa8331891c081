import { EventEmitter } from "node:events";
import type PouchDB from "pouchdb-node";
import { type Database, databaseBytes, LEVELDB_WRITE_BUFFER_BYTES, reclaimSpace } from "./database";
import { timeOf } from "./documents";
import { purgeDocuments } from "./purge";

/** How much of a database a device keeps; documents beyond it are purged here only (peers keep theirs). */
export interface RetentionPolicy {
  /** Bytes the database's directory may take on disk. */
  maxBytes?: number;
  /** Documents whose time (timeField) is older than this are purged. */
  maxAgeMs?: number;
  /** A field with the document's time (milliseconds or a date string). Without it, the oldest is the one changed here longest ago. */
  timeField?: string;
  /** A numeric field: lower values are purged first (a document without it counts as 0). */
  priorityField?: string;
}

/**
 * What LevelDB needs on disk besides the data, measured (test/unit/retention.test.ts): it writes into a
 * log of up to one write buffer (4 MiB, database.ts) and, while it turns that log into a table, holds
 * both; and a compaction writes its new tables before it deletes the old ones, so reclaiming space takes
 * up to the data's size again for a moment. So the data is kept under half of what the cap leaves after
 * two write buffers.
 */
const LEVELDB_HEADROOM = 2 * LEVELDB_WRITE_BUFFER_BYTES;
export const MIN_RETAINED_BYTES = 16 << 20;

/** Over this, documents are purged. */
const highWater = (maxBytes: number): number => (maxBytes - LEVELDB_HEADROOM) / 2;
/** A purge goes down to this share of the high water, room for the next arrivals before the next purge. */
const LOW_WATER = 0.6;
/** Purge rounds per check: each measures again, since the bytes per document are only an estimate. */
const MAX_ROUNDS = 5;
/** A check follows a change this much later, so that a replicated batch is measured once. */
const SETTLE_MS = 200;
/** Changes read per page when choosing what to purge. */
const CANDIDATE_PAGE = 500;
/** Age is checked this often at most (and as often as a tenth of the age allows). */
const AGE_CHECK_MS = 60_000;

export interface PurgeEvent {
  database: string;
  reason: "size" | "age";
  /** Documents purged. */
  purged: number;
  /** The database's size on disk before and after. */
  bytesBefore: number;
  bytesAfter: number;
}

interface RetentionEvents {
  purged: [event: PurgeEvent];
  error: [err: Error];
  stopped: [];
}

/** Takes from a list in order, `count` at a time. */
function fromList(candidates: Candidate[]): (count: number) => Promise<string[]> {
  let at = 0;
  return (count) => {
    const taken = candidates.slice(at, at + count).map((candidate) => candidate.id);
    at += taken.length;
    return Promise.resolve(taken);
  };
}

interface Candidate {
  id: string;
  priority: number;
  /** Its time, or its place in the changes feed when there is no time field (or the document has none). */
  time: number;
  order: number;
}

/** Checks a policy's numbers and fields; the editor and the library give the same errors. */
export function validateRetention(policy: RetentionPolicy): RetentionPolicy {
  if (policy.maxBytes !== undefined && !(policy.maxBytes >= MIN_RETAINED_BYTES)) {
    throw new Error(`a database's size cap must be at least ${MIN_RETAINED_BYTES >> 20} MB: LevelDB needs room besides the data for its log and to compact`);
  }
  if (policy.maxAgeMs !== undefined && !(policy.maxAgeMs > 0)) throw new Error("a maximum age must be more than 0");
  if (policy.maxAgeMs !== undefined && !policy.timeField) throw new Error("a maximum age needs the field that holds each document's time");
  for (const field of [policy.timeField, policy.priorityField]) {
    if (field !== undefined && (field === "" || field.startsWith("_"))) throw new Error(`"${field}" is not a field a document's own (CouchDB's fields start with _)`);
  }
  return policy;
}

/**
 * Keeps one database within its policy: after changes arrive (replication, flows) it measures the
 * directory, and above half of the cap less LevelDB's headroom (highWater) purges the oldest documents (lowest priority first) and compacts
 * until it is at 60 % of that; documents older than the maximum age go as they age. Design documents and
 * deletions are never purged. Every purge is local (purge.ts): peers keep their copies.
 */
export class RetentionKeeper extends EventEmitter<RetentionEvents> {
  private feed?: PouchDB.Changes<object>;
  private settle?: NodeJS.Timeout;
  private ageTimer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private stopped = false;

  constructor(
    private readonly db: Database,
    private readonly database: string,
    private readonly policy: RetentionPolicy,
    /** Registers work with the database's owner, which waits for it before closing the database. */
    private readonly track: <T>(work: Promise<T>) => Promise<T> = (work) => work,
  ) {
    super();
    validateRetention(policy);
  }

  start(): void {
    if (this.feed || this.stopped) return;
    this.feed = this.db.changes({ since: "now", live: true });
    this.feed.on("change", () => this.soon());
    this.feed.on("error", () => undefined); // ends when the database closes
    if (this.policy.maxAgeMs !== undefined) {
      this.ageTimer = setInterval(() => this.soon(), Math.max(1_000, Math.min(AGE_CHECK_MS, this.policy.maxAgeMs / 10)));
      this.ageTimer.unref();
    }
    this.soon();
  }

  /** Stops watching; waits for a check under way. */
  async stop(): Promise<void> {
    if (!this.stopped) this.emit("stopped");
    this.stopped = true;
    this.feed?.cancel();
    this.feed = undefined;
    clearTimeout(this.settle);
    clearInterval(this.ageTimer);
    await this.running;
  }

  /** Checks now (and resolves when done): for tests and a flow's "check now". */
  check(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.track(this.checkOnce())
      .catch((err: Error) => void this.emit("error", err))
      .finally(() => {
        this.running = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          this.soon();
        }
      });
    return this.running;
  }

  private soon(): void {
    if (this.stopped || this.settle) return;
    this.settle = setTimeout(() => {
      this.settle = undefined;
      if (!this.stopped) void this.check();
    }, SETTLE_MS);
    this.settle.unref();
  }

  private async checkOnce(): Promise<void> {
    if (this.policy.maxAgeMs !== undefined) await this.purgeAged(this.policy.maxAgeMs);
    if (this.policy.maxBytes !== undefined) await this.purgeToSize(this.policy.maxBytes);
  }

  private async purgeAged(maxAgeMs: number): Promise<void> {
    const cutoff = Date.now() - maxAgeMs;
    const aged = (await this.candidates(true)).filter((candidate) => candidate.time < cutoff).map((candidate) => candidate.id);
    if (aged.length === 0 || this.stopped) return;
    const bytesBefore = databaseBytes(this.db);
    const { purged } = await purgeDocuments(this.db, aged);
    await reclaimSpace(this.db);
    this.emit("purged", { database: this.database, reason: "age", purged: purged.length, bytesBefore, bytesAfter: databaseBytes(this.db) });
  }

  private async purgeToSize(maxBytes: number): Promise<void> {
    const bytesBefore = databaseBytes(this.db);
    const high = highWater(maxBytes);
    if (bytesBefore <= high) return;
    // Old revisions and deleted entries may be all that is over: compacting comes first.
    await reclaimSpace(this.db);
    let bytes = databaseBytes(this.db);
    let purged = 0;
    const next = this.policy.timeField || this.policy.priorityField ? fromList(await this.candidates(false)) : this.oldestFirst();
    let documents = (await this.db.info()).doc_count;
    for (let round = 0; round < MAX_ROUNDS && bytes > high * LOW_WATER && documents > 0 && !this.stopped; round++) {
      const count = Math.max(1, Math.ceil((bytes - high * LOW_WATER) / (bytes / documents)));
      const ids = await next(count);
      if (ids.length === 0) break;
      const result = await purgeDocuments(this.db, ids);
      purged += result.purged.length;
      documents -= result.purged.length;
      await reclaimSpace(this.db);
      bytes = databaseBytes(this.db);
    }
    if (purged > 0) this.emit("purged", { database: this.database, reason: "size", purged, bytesBefore, bytesAfter: bytes });
  }

  /**
   * Without a time or priority field, the order of the changes feed is the order to purge in (the
   * document changed here longest ago first): read only as far as needed, from where the last take ended.
   */
  private oldestFirst(): (count: number) => Promise<string[]> {
    let since: number | string = 0;
    let done = false;
    return async (count) => {
      const ids: string[] = [];
      while (ids.length < count && !done) {
        const page: { results: Array<PouchDB.Change<object>>; last_seq: number | string } = await this.db.changes({ since, limit: Math.min(CANDIDATE_PAGE, count - ids.length), return_docs: true });
        for (const change of page.results) if (!change.deleted && !change.id.startsWith("_design/")) ids.push(change.id);
        if (page.results.length === 0) done = true;
        since = page.last_seq;
      }
      return ids;
    };
  }

  /**
   * The documents that may be purged, first to go first: lowest priority, then oldest. With `timed`,
   * only documents that have a time. A document without a time is kept longest within its priority (a
   * settings document is not a reading), and ties keep the order of the changes feed.
   */
  private async candidates(timed: boolean): Promise<Candidate[]> {
    const { timeField, priorityField } = this.policy;
    const needDocs = Boolean(timeField || priorityField);
    const candidates: Candidate[] = [];
    // In pages, keeping only what the order needs: the database may be far larger than memory should hold.
    let since: number | string = 0;
    let order = 0;
    for (;;) {
      const page: { results: Array<PouchDB.Change<Record<string, unknown>>>; last_seq: number | string } = await this.db.changes<Record<string, unknown>>({ since, limit: CANDIDATE_PAGE, include_docs: needDocs, return_docs: true });
      for (const change of page.results) {
        order++;
        if (change.deleted || change.id.startsWith("_design/")) continue;
        const doc = change.doc as Record<string, unknown> | undefined;
        const time = timeField ? timeOf(doc?.[timeField]) : order;
        if (timed && Number.isNaN(time)) continue;
        const priority = priorityField ? Number(doc?.[priorityField]) : 0;
        candidates.push({ id: change.id, priority: Number.isFinite(priority) ? priority : 0, time: Number.isNaN(time) ? Infinity : time, order });
      }
      if (page.results.length < CANDIDATE_PAGE || this.stopped) break;
      since = page.last_seq;
    }
    return candidates.sort((a, b) => a.priority - b.priority || a.time - b.time || a.order - b.order);
  }
}
