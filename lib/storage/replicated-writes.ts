import type PouchDB from "pouchdb-node";
import type { Database } from "./database";

/** What PouchDB's replicator writes: documents with their revisions as they are (new_edits=false). */
export interface ReplicatedWrite {
  docs: Array<PouchDB.Existing<object>>;
  new_edits: false;
}

/** Stores a replicated write without passing the interceptor again. */
export type StoreReplicated = (write: ReplicatedWrite) => Promise<unknown[]>;

/** Decides what of a replicated write is stored; answers as PouchDB's bulkDocs does (the failures, for new_edits=false). */
export type ReplicatedWriteHandler = (write: ReplicatedWrite, store: StoreReplicated) => Promise<unknown[]>;

const HANDLER = Symbol("peer-mesh.replicatedWriteHandler");
const STORE = Symbol("peer-mesh.storeReplicated");

interface Intercepted {
  [HANDLER]?: ReplicatedWriteHandler;
  [STORE]?: StoreReplicated;
}

/**
 * Routes every replicated write into `db` (PouchDB's replicator calls bulkDocs with new_edits=false) to
 * `handler`; other writes pass as they came. The database object is patched once; a later call replaces
 * the handler rather than wrapping the previous one, because one open database outlives the devices that
 * use it (a device restarted on the same storage takes it over, see open-databases.ts).
 *
 * Returns the way around the interceptor, for the handler's owner to store what it accepted.
 */
export function interceptReplicatedWrites(db: Database, handler: ReplicatedWriteHandler): StoreReplicated {
  const target = db as unknown as Intercepted & { bulkDocs: (...args: unknown[]) => unknown };
  target[HANDLER] = handler;
  if (target[STORE]) return target[STORE];
  const original = target.bulkDocs.bind(db);
  const store: StoreReplicated = (write) => original(write) as Promise<unknown[]>;
  target[STORE] = store;
  // PouchDB reads its callback from the number of arguments: calls that are not replicated writes pass on as they came.
  target.bulkDocs = (...args: unknown[]): unknown => {
    const [request, options] = args;
    const body = request as { docs?: unknown; new_edits?: boolean } | undefined;
    const replicated = args.length <= 2 && !Array.isArray(request) && body?.new_edits === false && Array.isArray(body.docs) && typeof options !== "function";
    if (!replicated) return original(...args);
    return target[HANDLER]!(body as ReplicatedWrite, store);
  };
  return store;
}
