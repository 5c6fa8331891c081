import { EventEmitter } from "node:events";
import type PouchDB from "pouchdb-node";
import type { Database } from "../storage/database";
import { timeOf } from "../storage/documents";

/** What to do when replication brings two versions of a document edited apart (offline, on two devices). */
export type ConflictPolicy =
  /** Report it; the revision CouchDB's rules picked stays the winner until a flow chooses (resolve()). */
  | { kind: "report" }
  /** Keep the version whose `field` (a number of milliseconds or a date string) is latest; drop the rest. */
  | { kind: "last-writer-wins"; field: string };

export interface ConflictEvent {
  database: string;
  id: string;
  /** The revision that won by CouchDB's rules when the conflict was seen. */
  winner: string;
  /** The other live revisions. */
  losers: string[];
  /** Set when the conflict was resolved here: which revision was kept, and by what. */
  resolved?: { kept: string; by: "last-writer-wins" | "flow" };
}

interface ConflictEvents {
  conflict: [event: ConflictEvent];
  error: [err: Error];
}

type Leaf = PouchDB.Existing<Record<string, unknown>>;

/**
 * Watches one database for documents that replication left with conflicting revisions, reports each,
 * and resolves them by the policy. A resolution only deletes the losing leaves, never writes a new
 * version: two devices resolving the same conflict by the same rule then agree (deleted branches are no
 * conflict), where writing the winner afresh on both would make a new conflict each time.
 */
export class ConflictWatcher extends EventEmitter<ConflictEvents> {
  private feed?: PouchDB.Changes<object>;
  private working: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Database,
    private readonly database: string,
    private readonly policy: ConflictPolicy,
  ) {
    super();
  }

  /**
   * From now on: a conflict that was already there is reported when its document next changes (a full
   * scan at every start would cost a read of every document).
   */
  start(): void {
    if (this.feed) return;
    this.feed = this.db.changes({ since: "now", live: true, include_docs: true, conflicts: true });
    this.feed.on("change", (change) => {
      const doc = change.doc;
      if (!doc?._conflicts?.length) return;
      // One at a time, in order: the same document may change again while its conflict is being resolved.
      this.working = this.working.then(() => this.handle(doc._id, doc._rev, doc._conflicts!)).catch((err: Error) => void this.emit("error", err));
    });
    this.feed.on("error", () => undefined); // ends when the database closes
  }

  async stop(): Promise<void> {
    this.feed?.cancel();
    this.feed = undefined;
    await this.working;
  }

  /** A flow's choice: keeps `keep` (one of the document's live revisions) and deletes the others. */
  async resolve(id: string, keep: string): Promise<ConflictEvent> {
    const doc = await this.db.get(id, { conflicts: true });
    const leaves = [doc._rev, ...(doc._conflicts ?? [])];
    if (!leaves.includes(keep)) throw new Error(`${this.database}/${id} has no live revision ${keep} (live: ${leaves.join(", ")})`);
    await this.deleteAllBut(id, leaves, keep);
    return { database: this.database, id, winner: doc._rev, losers: doc._conflicts ?? [], resolved: { kept: keep, by: "flow" } };
  }

  private async handle(id: string, winner: string, losers: string[]): Promise<void> {
    const event: ConflictEvent = { database: this.database, id, winner, losers };
    if (this.policy.kind === "last-writer-wins") {
      const leaves = await this.db.get(id, { open_revs: [winner, ...losers] });
      const live = leaves.flatMap((leaf) => (leaf.ok && !leaf.ok._deleted ? [leaf.ok as Leaf] : []));
      if (live.length > 1) {
        const kept = latest(live, this.policy.field)._rev;
        await this.deleteAllBut(id, live.map((leaf) => leaf._rev), kept);
        event.resolved = { kept, by: "last-writer-wins" };
      }
    }
    this.emit("conflict", event);
  }

  private async deleteAllBut(id: string, leaves: string[], keep: string): Promise<void> {
    const doomed = leaves.filter((rev) => rev !== keep).map((rev) => ({ _id: id, _rev: rev, _deleted: true }));
    const results = await this.db.bulkDocs(doomed);
    // Another resolver (a second node on this database, or a peer's tombstone arriving) may have been first.
    const failed = results.filter((result) => "error" in result && result.status !== 409);
    if (failed.length > 0) throw new Error(`${this.database}/${id}: could not delete a losing revision: ${JSON.stringify(failed[0])}`);
  }
}

/**
 * The leaf whose `field` is latest; a leaf without a readable one counts as oldest. Ties go to the
 * revision CouchDB itself would pick (higher generation, then the greater hash), so that every device
 * picks the same leaf from the same leaves.
 */
function latest(leaves: Leaf[], field: string): Leaf {
  const time = (leaf: Leaf): number => {
    const ms = timeOf(leaf[field]);
    return Number.isNaN(ms) ? -Infinity : ms;
  };
  const generation = (rev: string): number => Number(rev.split("-")[0]);
  return leaves.reduce((best, leaf) => {
    const [a, b] = [time(leaf), time(best)];
    if (a !== b) return a > b ? leaf : best;
    const [ga, gb] = [generation(leaf._rev), generation(best._rev)];
    if (ga !== gb) return ga > gb ? leaf : best;
    return leaf._rev > best._rev ? leaf : best;
  });
}
