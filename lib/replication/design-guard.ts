import type { Database } from "../storage/database";

/**
 * Pulling a database must not bring in the peer's design documents: their views and validation
 * functions are code, and this device runs none from peers. Replicated writes (new_edits=false) of
 * _design/ ids are refused one by one ("forbidden", which PouchDB's replicator steps over).
 */
export function refuseReplicatedDesignDocs(db: Database): Database {
  const original = db.bulkDocs.bind(db) as (...args: unknown[]) => Promise<unknown>;
  // PouchDB reads its callback from the number of arguments: calls that are not ours to check pass on as they came.
  const guarded = (...args: unknown[]): Promise<unknown> => {
    const [request, options] = args;
    const body = request as { docs?: Array<{ _id?: unknown }>; new_edits?: boolean };
    const replicated = args.length <= 2 && !Array.isArray(request) && body?.new_edits === false && Array.isArray(body.docs) && typeof options !== "function";
    if (!replicated) return original(...args);
    return storeWithoutDesignDocs(original, body as { docs: Array<{ _id?: unknown }> });
  };
  (db as { bulkDocs: unknown }).bulkDocs = guarded;
  return db;
}

/** PouchDB answers a replicated write (new_edits=false) with its failures only; the design documents join them. */
async function storeWithoutDesignDocs(original: (...args: unknown[]) => Promise<unknown>, body: { docs: Array<{ _id?: unknown }> }): Promise<unknown[]> {
  const isDesign = (doc: { _id?: unknown }): boolean => typeof doc?._id === "string" && doc._id.startsWith("_design/");
  const kept = body.docs.filter((doc) => !isDesign(doc));
  const failures = kept.length > 0 ? ((await original({ ...body, docs: kept })) as unknown[]) : [];
  const reason = "design documents are never accepted from peers";
  const refused = body.docs.filter(isDesign).map((doc) => ({ id: doc._id, error: "forbidden", reason, name: "forbidden", status: 403, message: reason }));
  return [...refused, ...failures];
}
