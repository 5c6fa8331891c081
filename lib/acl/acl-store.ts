import type PouchDB from "pouchdb-node";
import { GROUP_DOC_PREFIX } from "../protocol/doc-ids";
import type { Database } from "../storage/database";
import type { Acl } from "./acl";
import type { GroupDoc } from "./signed-group";

/** Verified copies of every group in force (the revocation floor), in a _local document: _local documents
 * never replicate, and the mesh route refuses every _local request, so no peer can delete it or put an
 * older version back; it survives restarts with the database. */
const FORCE_DOC = "_local/peer-mesh-groups";

interface ForceDoc {
  _id: string;
  _rev?: string;
  groups: Record<string, GroupDoc>;
}

/**
 * Keeps an Acl's groups in PouchDB: loads them at start, stores the new versions of this device's own groups,
 * and feeds every group document that arrives later (by replication, through any relay) to the Acl, which
 * verifies it. Conflicting revisions are all looked at, and the highest valid version wins.
 */
export class AclStore {
  private feed?: PouchDB.Changes<object>;
  private saving: Promise<unknown> = Promise.resolve();
  private rememberQueued = false;

  constructor(
    private readonly db: Database,
    private readonly acl: Acl,
  ) {}

  async open(): Promise<void> {
    const force = await this.forceDoc();
    for (const doc of Object.values(force.groups)) this.acl.acceptGroup(doc);
    const all = await this.db.allDocs({ startkey: GROUP_DOC_PREFIX, endkey: `${GROUP_DOC_PREFIX}\uffff`, include_docs: true, conflicts: true });
    for (const row of all.rows) if (row.doc) await this.ingest(row.doc);
    this.remember(); // groups that were only in the database are now in force too
    this.acl.on("changed", () => this.remember());
    this.feed = this.db.changes({ since: "now", live: true, include_docs: true, conflicts: true });
    this.feed.on("change", (change) => {
      if (change.id.startsWith(GROUP_DOC_PREFIX) && change.doc && !change.deleted) void this.ingest(change.doc);
    });
    this.feed.on("error", () => undefined); // a closed database ends the feed; close() handles that
  }

  /** Stores a new version of a group (made by Acl.revise) over whatever revision the database holds. */
  async save(doc: GroupDoc): Promise<void> {
    const existing = await this.db.get(doc._id).catch(() => undefined);
    await this.db.put({ ...doc, _rev: existing?._rev });
  }

  async close(): Promise<void> {
    this.feed?.cancel();
    await this.saving.catch(() => undefined);
  }

  private async ingest(doc: PouchDB.Existing<object>): Promise<void> {
    this.acl.acceptGroup(stripped(doc));
    for (const rev of doc._conflicts ?? []) {
      const other = await this.db.get(doc._id, { rev }).catch(() => undefined);
      if (other) this.acl.acceptGroup(stripped(other));
    }
  }

  private async forceDoc(): Promise<ForceDoc> {
    return (await this.db.get<ForceDoc>(FORCE_DOC).catch(() => undefined)) ?? { _id: FORCE_DOC, groups: {} };
  }

  /**
   * Writes the groups in force; serialised so that two changes in a row cannot race on the _rev, and
   * coalesced: a burst of changes is one write of the latest state, not one whole record per change.
   */
  private remember(): void {
    if (this.rememberQueued) return;
    this.rememberQueued = true;
    this.saving = this.saving
      .then(async () => {
        this.rememberQueued = false;
        const force = await this.forceDoc();
        force.groups = Object.fromEntries(this.acl.listGroups().map((group) => [group._id, stripped(group) as GroupDoc]));
        await this.db.put(force);
      })
      .catch(() => undefined);
  }
}

/** A group document without PouchDB's bookkeeping, as it was signed. */
function stripped(doc: object): object {
  const { _rev, _conflicts, ...rest } = doc as { _rev?: string; _conflicts?: string[] };
  void _rev;
  void _conflicts;
  return rest;
}

