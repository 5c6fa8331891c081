import { EventEmitter } from "node:events";
import type PouchDB from "pouchdb-node";
import { compactStore, type Database, databaseBytes, LEVELDB_WRITE_BUFFER_BYTES } from "./database";
import { timeOf } from "./documents";
import { compactWithReadsHeld, purgeDocuments } from "./purge";
import { holdWrites, type WriteHold } from "./write-hold";

/** How much of a database a device keeps; documents beyond it are purged here only (peers keep theirs). */
export interface RetentionPolicy {
  /** Bytes the database's directory may take on disk. */
  maxBytes?: number;
  /** Documents whose time (timeField) is older than this are purged. */
  maxAgeMs?: number;
  /** A field with the document's time (milliseconds or a date string): for maxAgeMs, and the oldest go first over the cap. */
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
/** PouchDB's compaction of old revisions runs at most this often. */
const REVISION_COMPACTION_MS = 60_000;
/** After a change, the directory is measured again at most this often (a few stat calls), to hold writes as soon as it is over. */
const MEASURE_MS = 20;
/** Changes read per page when choosing what to purge. */
const CANDIDATE_PAGE = 500;
/** Age is checked this often at most (and as often as a tenth of the age allows). */
const AGE_CHECK_MS = 60_000;
/**
 * One step of a check (a compaction, a purge, a read) that has not ended after this long is reported and
 * ends the check. A check that never ended once kept the keeper's stop, and so a deploy, waiting for good
 * (CI, Node 22); each step takes well under a second here.
 */
export const CHECK_STEP_DEADLINE_MS = 60_000;

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

type ChangesPage = { results: Array<PouchDB.Change<Record<string, unknown>>>; last_seq: number | string };

/** What the order of purging needs of a document: kept per document while the keeper runs. */
interface Entry {
  priority: number;
  /** Its time by the time field; NaN without one. */
  time: number;
  /** Its place in the changes feed (its sequence): lower was changed here longer ago. */
  seq: number;
}

interface Candidate extends Entry {
  id: string;
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
  private feed?: PouchDB.Changes<Record<string, unknown>>;
  /** With a time or priority field: each document's entry, from one read at start and the changes since. */
  private index?: Map<string, Entry>;
  private indexed?: Promise<void>;
  /** The changes feed's position that the index holds everything up to (with a time or priority field). */
  private indexedThrough = 0;
  /** While the index is first read: documents deleted since, so that the read does not bring them back. */
  private deletedWhileIndexing? = new Map<string, number>();
  private settle?: NodeJS.Timeout;
  private ageTimer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private revisionsCompactedAt = Date.now();
  /** While the database is over its high water: the hold on its writes (write-hold.ts). */
  private writeHold?: WriteHold;
  private measuredAt = 0;
  private started = false;
  private stopped = false;

  constructor(
    private readonly db: Database,
    private readonly database: string,
    private readonly policy: RetentionPolicy,
    /** Registers work with the database's owner, which waits for it before closing the database. */
    private readonly track: <T>(work: Promise<T>) => Promise<T> = (work) => work,
    private readonly stepDeadlineMs = CHECK_STEP_DEADLINE_MS,
  ) {
    super();
    validateRetention(policy);
  }

  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    if (this.policy.timeField || this.policy.priorityField) {
      this.index = new Map();
      this.indexed = this.track(this.watchIndexed()).finally(() => (this.deletedWhileIndexing = undefined));
      this.indexed.catch(() => undefined); // reported by the check that waits for it
    } else {
      this.watch("now", false);
    }
    if (this.policy.maxAgeMs !== undefined) {
      this.ageTimer = setInterval(() => this.soon(), Math.max(1_000, Math.min(AGE_CHECK_MS, this.policy.maxAgeMs / 10)));
      this.ageTimer.unref();
    }
    this.soon();
  }

  private watch(since: number | "now", docs: boolean): void {
    this.feed = this.db.changes<Record<string, unknown>>({ since, live: true, include_docs: docs });
    this.feed.on("change", (change) => {
      if (this.index) {
        this.note(change);
        this.indexedThrough = Math.max(this.indexedThrough, Number(change.seq));
      }
      this.soon();
    });
    this.feed.on("error", () => undefined); // ends when the database closes
  }

  /** The live feed from exactly where the first read of the index ends, so that no change falls between. */
  private async watchIndexed(): Promise<void> {
    const end = Number((await this.db.info()).update_seq);
    if (this.stopped) return;
    this.indexedThrough = end;
    this.watch(end, true);
    await this.readIndex(0, end);
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
    this.releaseWrites();
  }

  /** Checks now (and resolves when done), starting the keeper if it was not. */
  check(): Promise<void> {
    if (!this.started && !this.stopped) this.start();
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
    if (this.stopped) return;
    // Over the high water, waiting for a batch to settle would let a fast writer through: hold and check now.
    if (Date.now() - this.measuredAt >= MEASURE_MS && this.holdIfOver() !== undefined) {
      clearTimeout(this.settle);
      this.settle = undefined;
      void this.check();
      return;
    }
    if (this.settle) return;
    this.settle = setTimeout(() => {
      this.settle = undefined;
      if (!this.stopped) void this.check();
    }, SETTLE_MS);
    this.settle.unref();
  }

  private async checkOnce(): Promise<void> {
    try {
      if (this.policy.maxAgeMs !== undefined) await this.purgeAged(this.policy.maxAgeMs);
      if (this.policy.maxBytes !== undefined) await this.purgeToSize(this.policy.maxBytes);
    } finally {
      // Whatever is still over (nothing left to purge, a stop) must not keep writes waiting: the next change measures again.
      this.releaseWrites();
    }
    // A document changed again and again keeps every old revision's body until PouchDB compacts it; that
    // visits each document changed since it last ran, one at a time, so it runs now and then, not per check.
    if (Date.now() - this.revisionsCompactedAt >= REVISION_COMPACTION_MS && !this.stopped) {
      this.revisionsCompactedAt = Date.now();
      await this.step("compacting old revisions", this.db.compact());
    }
  }

  /**
   * Measures the directory; over the high water, writes into the database wait (write-hold.ts) until the
   * purge under way or next has brought it back under, and the bytes measured are returned. Writes faster
   * than a check would outrun it.
   */
  private holdIfOver(): number | undefined {
    const { maxBytes } = this.policy;
    if (maxBytes === undefined) return undefined;
    this.measuredAt = Date.now();
    const bytes = databaseBytes(this.db);
    if (bytes <= highWater(maxBytes)) return undefined;
    if (!this.writeHold?.active) this.writeHold = holdWrites(this.db);
    return bytes;
  }

  /** `work`, or an error naming it once it has run for CHECK_STEP_DEADLINE_MS. */
  private async step<T>(what: string, work: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`keeping ${this.database} within its policy: ${what} has not ended after ${this.stepDeadlineMs / 1000} s; the check stopped there and the next change starts another`)), this.stepDeadlineMs);
    });
    try {
      return await Promise.race([work, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  private releaseWrites(): void {
    this.writeHold?.release();
    this.writeHold = undefined;
  }

  private async purgeAged(maxAgeMs: number): Promise<void> {
    const cutoff = Date.now() - maxAgeMs;
    const aged = (await this.step("reading the index", this.indexedCandidates())).filter((candidate) => candidate.time < cutoff).map((candidate) => candidate.id);
    if (aged.length === 0 || this.stopped) return;
    const bytesBefore = databaseBytes(this.db);
    await this.purge(aged);
    this.emit("purged", { database: this.database, reason: "age", purged: aged.length, bytesBefore, bytesAfter: databaseBytes(this.db) });
  }

  private async purgeToSize(maxBytes: number): Promise<void> {
    const bytesBefore = this.holdIfOver();
    if (bytesBefore === undefined) return;
    const high = highWater(maxBytes);
    // Deleted entries (purged, compacted) may be all that is over: compacting comes first. With no changes
    // read overlapping it: such a read kept the replaced tables on disk, the size below counted them twice,
    // and the check purged nearly every document (11,728 of 12,000 where 9,916 was its share).
    await this.step("compacting LevelDB", compactWithReadsHeld(this.db, () => compactStore(this.db)));
    let bytes = databaseBytes(this.db);
    let purged = 0;
    // The index is read afresh each round: what arrived meanwhile may be older than what is left.
    const next = this.index ? async (count: number) => (await this.indexedCandidates()).slice(0, count).map((candidate) => candidate.id) : this.oldestFirst();
    let documents = (await this.step("reading the document count", this.db.info())).doc_count;
    for (let round = 0; round < MAX_ROUNDS && bytes > high * LOW_WATER && documents > 0 && !this.stopped; round++) {
      const count = Math.max(1, Math.ceil((bytes - high * LOW_WATER) / (bytes / documents)));
      const ids = await this.step("choosing what to purge", next(count));
      if (ids.length === 0) break;
      const gone = await this.purge(ids);
      purged += gone;
      documents -= gone;
      const roundBefore = bytes;
      bytes = databaseBytes(this.db);
      // Nothing came back: LevelDB keeps what a read begun before the purge can still see (its iterator's
      // snapshot) while that read lasts. Purging on would not bring it back either, and took every document.
      if (bytes >= roundBefore) break;
    }
    if (purged > 0) this.emit("purged", { database: this.database, reason: "size", purged, bytesBefore, bytesAfter: bytes });
  }

  private async purge(ids: string[]): Promise<number> {
    // Compacted before the changes reads go on, so that none keeps the replaced tables for the measure.
    const { purged } = await this.step(`purging ${ids.length} documents and compacting LevelDB`, purgeDocuments(this.db, ids, { whileReadsHeld: () => compactStore(this.db) }));
    for (const id of purged) this.index?.delete(id);
    return purged.length;
  }

  /**
   * Without a priority field, the order of the changes feed is the order to purge in (the document
   * changed here longest ago first): read only as far as needed, from where the last take ended.
   */
  private oldestFirst(): (count: number) => Promise<string[]> {
    let since: number | string = 0;
    let done = false;
    return async (count) => {
      const ids: string[] = [];
      while (ids.length < count && !done) {
        const page: ChangesPage = await this.db.changes({ since, limit: Math.min(CANDIDATE_PAGE, count - ids.length), return_docs: true });
        for (const change of page.results) if (!change.deleted && !change.id.startsWith("_design/")) ids.push(change.id);
        if (page.results.length === 0) done = true;
        since = page.last_seq;
      }
      return ids;
    };
  }

  /**
   * The indexed documents, first to go first: lowest priority, then oldest by the time field, then
   * changed here longest ago. A time field matters when data also comes back: a document purged here
   * returns when a replication that never ran before (a new peer, the other direction's first session)
   * finds it at a peer, and by its time it is then the first to go again, not the newest data. Kept in
   * memory rather than read at each check: a database that is written as fast as it can be read would
   * keep such a read from ever ending (about 100 bytes per document).
   */
  private async indexedCandidates(): Promise<Candidate[]> {
    await this.indexed;
    await this.catchUpIndex();
    const candidates = [...this.index!].map(([id, entry]) => ({ id, ...entry }));
    // Without a time, a document counts as the newest of its priority: a settings document is not a reading.
    const time = (entry: Entry): number => (Number.isNaN(entry.time) ? Infinity : entry.time);
    return candidates.sort((a, b) => a.priority - b.priority || time(a) - time(b) || a.seq - b.seq);
  }

  /**
   * Notes what the live feed has not brought yet. A replication's batches can arrive faster than the feed
   * reads them (its reads wait while a purge runs): choosing from an index that lagged by thousands of
   * documents, a purge sized by the document count took every document it knew, the newest among them,
   * and kept only those it had not seen (test/unit/retention.test.ts).
   */
  private async catchUpIndex(): Promise<void> {
    this.indexedThrough = Math.max(this.indexedThrough, await this.readIndex(this.indexedThrough));
  }

  /**
   * Notes every document's entry changed after `since`, up to `end` (at start: what was stored then; the
   * live feed adds what comes after). Returns where the read ended.
   */
  private async readIndex(since: number, end = Infinity): Promise<number> {
    for (;;) {
      const page: ChangesPage = await this.db.changes<Record<string, unknown>>({ since, limit: CANDIDATE_PAGE, include_docs: true, return_docs: true });
      for (const change of page.results) if (Number(change.seq) <= end) this.note(change);
      since = Math.max(since, Number(page.last_seq));
      if (page.results.length < CANDIDATE_PAGE || since >= end || this.stopped) return since;
    }
  }

  private note(change: PouchDB.Change<Record<string, unknown>>): void {
    const index = this.index!;
    const seq = Number(change.seq);
    const known = index.get(change.id);
    if (known && known.seq >= seq) return; // the start's read and the live feed overlap
    if (change.deleted || change.id.startsWith("_design/")) {
      index.delete(change.id);
      this.deletedWhileIndexing?.set(change.id, seq);
      return;
    }
    if ((this.deletedWhileIndexing?.get(change.id) ?? -1) > seq) return;
    const doc = change.doc as Record<string, unknown> | undefined;
    const { timeField, priorityField } = this.policy;
    const priority = priorityField ? Number(doc?.[priorityField]) : 0;
    index.set(change.id, { priority: Number.isFinite(priority) ? priority : 0, time: timeField ? timeOf(doc?.[timeField]) : NaN, seq });
  }
}
