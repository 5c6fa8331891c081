import type { Database } from "../storage/database";
import { interceptReplicatedWrites, ReplicatedWrite, StoreReplicated } from "../storage/replicated-writes";

/**
 * Pulling a database must not bring in the peer's design documents: their views and validation
 * functions are code, and this device runs none from peers. Replicated writes (new_edits=false) of
 * _design/ ids are refused one by one ("forbidden", which PouchDB's replicator steps over).
 */
export function refuseReplicatedDesignDocs(db: Database): Database {
  interceptReplicatedWrites(db, storeWithoutDesignDocs);
  return db;
}

/** PouchDB answers a replicated write (new_edits=false) with its failures only; the design documents join them. */
async function storeWithoutDesignDocs(write: ReplicatedWrite, store: StoreReplicated): Promise<unknown[]> {
  const isDesign = (doc: { _id?: unknown }): boolean => typeof doc?._id === "string" && doc._id.startsWith("_design/");
  const kept = write.docs.filter((doc) => !isDesign(doc));
  const failures = kept.length > 0 ? await store({ ...write, docs: kept }) : [];
  const reason = "design documents are never accepted from peers";
  const refused = write.docs.filter(isDesign).map((doc) => ({ id: doc._id, error: "forbidden", reason, name: "forbidden", status: 403, message: reason }));
  return [...refused, ...failures];
}
