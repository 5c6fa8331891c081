import type PouchDB from "pouchdb-node";
import { isStorageFull, type Database } from "../storage/database";
import type { BulkResult, CouchAccess, CouchReply, CouchRequest } from "../protocol/couch";
import { WireError } from "../protocol/errors";

export interface CouchHooks {
  /** The database's name as peers know it. */
  name: string;
  /** Every write with new_edits=false (replication) passes through here, so a database can check documents from relays. */
  ingest?(docs: Array<PouchDB.Existing<object>>): Promise<BulkResult[]>;
  /**
   * A replication-only view (the mesh's, for one neighbour): the peer sees only these documents, through
   * the routes replication needs (the database's info, _changes, _revs_diff, _bulk_get, a document or its
   * attachment by id), and writes only through _bulk_docs with new_edits=false into `ingest`. _all_docs,
   * _local, PUT, POST and DELETE are refused: a relay must not read what is not routed to it, delete
   * what others rely on, or touch this device's own records.
   */
  visibleIds?(): Promise<string[]> | string[];
  /**
   * With visibleIds: a sequence below each of `ids`' latest writes (Mesh.sequenceFloor). A _changes read
   * for them starts there instead of at what the client asked, when that is lower: a mesh session asks
   * from 0 (it keeps no checkpoint) for the few documents routed to it, and reading the whole store for
   * them made dozens of full reads a second.
   */
  sequenceFloor?(ids: readonly string[]): number;
  /** The largest request body taken. */
  maxBodyBytes: number;
  /** Told when a write failed because the disk is full (the peer gets a 507 that names no path). */
  onStorageFull?(err: Error): void;
}

/** The longest a long poll here waits for a change (a client asking longer gets this). */
export const MAX_LONGPOLL_MS = 60_000;
const MAX_CHANGES_LIMIT = 10_000;

/**
 * The subset of the CouchDB HTTP API that replication uses (PouchDB, CouchDB and pouchdb-server speak it),
 * answered from a PouchDB database. Design documents are not served: their filters and views are code
 * that a remote peer must never get this device to run.
 */
export async function serveCouch(db: Database, request: CouchRequest, access: CouchAccess, hooks: CouchHooks): Promise<CouchReply> {
  try {
    return await route(db, request, access, hooks);
  } catch (err) {
    if (isStorageFull(err)) {
      hooks.onStorageFull?.(err as Error);
      return { status: 507, json: { error: "insufficient_storage", reason: `the peer's storage is full: nothing of this request was kept in "${hooks.name}"` } };
    }
    return errorReply(err);
  }
}

/** The routes a replication-only view serves; everything else is refused before any database call. */
function checkReplicationView(request: CouchRequest): void {
  const { method, segments } = request;
  const [first] = segments;
  const reading = method === "GET" || method === "HEAD";
  const allowed =
    (first === undefined && reading) ||
    (first === "_changes" && (reading || method === "POST")) ||
    ((first === "_revs_diff" || first === "_bulk_get" || first === "_bulk_docs") && method === "POST") ||
    (first === "_ensure_full_commit" && method === "POST") ||
    (first !== undefined && !first.startsWith("_") && reading);
  if (!allowed) throw new WireError("REFUSED", `${method} /${segments.join("/")} is not served to relays: the mesh takes replicated documents only`);
}

async function route(db: Database, request: CouchRequest, access: CouchAccess, hooks: CouchHooks): Promise<CouchReply> {
  const { method, segments, query } = request;
  if (hooks.visibleIds) checkReplicationView(request);
  /** In a replication-only view, a document not routed to the peer is as if it did not exist. */
  const visible = async (): Promise<Set<string> | undefined> => (hooks.visibleIds ? new Set(await hooks.visibleIds()) : undefined);
  const hidden = (id: string): WireError => new WireError("NOT_FOUND", `${id}: not found`);
  const need = (verb: "read" | "write"): void => {
    if (!access[verb]) throw new WireError("REFUSED", `this peer may not ${verb} the database "${hooks.name}"`);
  };
  const body = async (): Promise<Record<string, unknown>> => parseJson(await request.readBody(hooks.maxBodyBytes));
  const [first, second, ...rest] = segments;
  if (first === undefined) {
    if (method === "GET" || method === "HEAD") {
      need("read");
      const info = await db.info();
      return ok({ db_name: hooks.name, doc_count: info.doc_count, update_seq: info.update_seq, instance_start_time: "0" });
    }
    if (method === "PUT") return { status: 412, json: { error: "file_exists", reason: "The database exists." } };
    if (method === "POST") {
      need("write");
      return created(await storeDocs(db, [(await body()) as PouchDB.Existing<object>], true, hooks));
    }
    throw notAllowed(method);
  }
  if (first === "_design" || first.startsWith("_design/")) throw new WireError("REFUSED", "design documents are not served");
  switch (first) {
    case "_changes":
      need("read");
      if (method !== "GET" && method !== "POST") throw notAllowed(method);
      return ok(await changes(db, request, method === "POST" ? await body() : {}, hooks));
    case "_revs_diff": {
      need("read");
      const wanted = await body();
      // PouchDB trusts this shape; a peer's body is checked first so that bad input is a 400, not a 500.
      if (!Object.values(wanted).every((revs) => Array.isArray(revs) && revs.every((rev) => typeof rev === "string"))) throw new WireError("BAD_REQUEST", "_revs_diff needs {id: [rev, …]}");
      return ok(await db.revsDiff(wanted as Record<string, string[]>));
    }
    case "_bulk_get": {
      need("read");
      const { docs } = await body();
      if (!Array.isArray(docs)) throw new WireError("BAD_REQUEST", "_bulk_get needs a docs array");
      const wellFormed = (doc: unknown): boolean => {
        const { id, rev, atts_since } = (doc ?? {}) as { id?: unknown; rev?: unknown; atts_since?: unknown };
        return typeof doc === "object" && doc !== null && !Array.isArray(doc) && typeof id === "string" && (rev === undefined || typeof rev === "string") && (atts_since === undefined || (Array.isArray(atts_since) && atts_since.every((r) => typeof r === "string")));
      };
      if (!docs.every(wellFormed)) throw new WireError("BAD_REQUEST", "_bulk_get needs docs of {id, rev?, atts_since?}");
      const wanted = docs as Array<{ id: string; rev?: string }>;
      const shown = await visible();
      const served = shown ? wanted.filter((doc) => shown.has(doc.id)) : wanted;
      const found = served.length > 0 ? await db.bulkGet({ docs: served, revs: flag(query, "revs"), attachments: flag(query, "attachments"), latest: flag(query, "latest"), binary: false }) : { results: [] };
      if (!shown || served.length === wanted.length) return ok(found);
      const missing = wanted.filter((doc) => !shown.has(doc.id)).map((doc) => ({ id: doc.id, docs: [{ error: { id: doc.id, rev: doc.rev ?? "undefined", error: "not_found", reason: "missing" } }] }));
      return ok({ results: [...(found as { results: unknown[] }).results, ...missing] });
    }
    case "_bulk_docs": {
      need("write");
      const { docs, new_edits } = await body();
      if (!Array.isArray(docs)) throw new WireError("BAD_REQUEST", "_bulk_docs needs a docs array");
      if (!docs.every((doc) => typeof doc === "object" && doc !== null && !Array.isArray(doc))) throw new WireError("BAD_REQUEST", "_bulk_docs needs documents (JSON objects)");
      return created(await storeDocs(db, docs as Array<PouchDB.Existing<object>>, new_edits !== false, hooks));
    }
    case "_all_docs": {
      need("read");
      const keys = method === "POST" ? (await body()).keys : jsonParam(query, "keys");
      return ok(await db.allDocs({
        include_docs: flag(query, "include_docs"),
        conflicts: flag(query, "conflicts"),
        descending: flag(query, "descending"),
        limit: numberParam(query, "limit"),
        skip: numberParam(query, "skip"),
        startkey: jsonParam(query, "startkey") as string | undefined,
        endkey: jsonParam(query, "endkey") as string | undefined,
        keys: Array.isArray(keys) ? (keys as string[]) : undefined,
      }));
    }
    case "_ensure_full_commit":
      return { status: 201, json: { ok: true, instance_start_time: "0" } };
    case "_local":
      if (second === undefined || rest.length > 0) throw new WireError("NOT_FOUND", "no such local document");
      return document(db, request, `_local/${second}`, access, hooks);
    default:
      if (first.startsWith("_")) throw new WireError("NOT_FOUND", `${first} is not served here`);
      if (hooks.visibleIds && !(await visible())!.has(first)) throw hidden(first);
      if (second !== undefined) {
        need("read");
        if (method !== "GET" && method !== "HEAD") throw notAllowed(method);
        const rev = query.get("rev") ?? undefined;
        const data = await db.getAttachment(first, [second, ...rest].join("/"), rev ? { rev } : {});
        const doc = await db.get<{ _attachments?: Record<string, { content_type?: string }> }>(first, rev ? { rev } : {});
        return { status: 200, binary: data, contentType: doc._attachments?.[[second, ...rest].join("/")]?.content_type ?? "application/octet-stream" };
      }
      return document(db, request, first, access, hooks);
  }
}

async function document(db: Database, request: CouchRequest, id: string, access: CouchAccess, hooks: CouchHooks): Promise<CouchReply> {
  const { method, query } = request;
  if (method === "GET" || method === "HEAD") {
    if (!access.read) throw new WireError("REFUSED", `this peer may not read the database "${hooks.name}"`);
    const openRevs = query.get("open_revs");
    if (openRevs !== null) {
      const revs = openRevs === "all" ? "all" : (JSON.parse(openRevs) as string[]);
      return ok(await db.get(id, { open_revs: revs, revs: flag(query, "revs"), attachments: flag(query, "attachments"), latest: flag(query, "latest") }));
    }
    return ok(await db.get(id, { rev: query.get("rev") ?? undefined, revs: flag(query, "revs"), conflicts: flag(query, "conflicts"), attachments: flag(query, "attachments") }));
  }
  // Checkpoints (_local) are writes too: a peer that may only read replicates without them (PouchDB carries on).
  if (!access.write) throw new WireError("REFUSED", `this peer may not write the database "${hooks.name}"`);
  if (method === "PUT") {
    const doc = parseJson(await request.readBody(hooks.maxBodyBytes));
    const [result] = await storeDocs(db, [{ ...doc, _id: id } as PouchDB.Existing<object>], true, hooks);
    if ("error" in result) return { status: result.error === "conflict" ? 409 : 403, json: result };
    return { status: 201, json: result };
  }
  if (method === "DELETE") {
    const rev = query.get("rev");
    if (!rev) throw new WireError("BAD_REQUEST", "deleting a document needs its rev");
    return ok({ ...(await db.remove({ _id: id, _rev: rev })) });
  }
  throw notAllowed(method);
}

/** Local edits (new_edits=true) go straight in; replicated revisions pass the database's ingest check first. */
async function storeDocs(db: Database, docs: Array<PouchDB.Existing<object>>, newEdits: boolean, hooks: CouchHooks): Promise<BulkResult[]> {
  if (docs.some((doc) => typeof doc?._id === "string" && doc._id.startsWith("_design/"))) {
    return docs.map((doc) => ({ id: String(doc?._id), error: "forbidden", reason: "design documents are not accepted" }));
  }
  if (!newEdits) {
    if (hooks.ingest) return hooks.ingest(docs);
    return (await db.bulkDocs({ docs, new_edits: false })) as BulkResult[];
  }
  if (hooks.ingest) throw new WireError("REFUSED", "this database takes replicated documents only");
  return (await db.bulkDocs(docs)) as BulkResult[];
}

async function changes(db: Database, request: CouchRequest, body: Record<string, unknown>, hooks: CouchHooks): Promise<unknown> {
  const { query } = request;
  const filter = query.get("filter");
  let docIds: string[] | undefined;
  if (filter === "_doc_ids") {
    const ids = body.doc_ids ?? jsonParam(query, "doc_ids");
    if (!Array.isArray(ids)) throw new WireError("BAD_REQUEST", "filter=_doc_ids needs doc_ids");
    docIds = ids.map(String);
  } else if (filter !== null) {
    throw new WireError("BAD_REQUEST", `filter ${filter} is not supported (only _doc_ids)`);
  }
  const visible = hooks.visibleIds ? new Set(await hooks.visibleIds()) : undefined;
  if (visible) docIds = (docIds ?? [...visible]).filter((id) => visible.has(id));
  const since = query.get("since") ?? "0";
  const asked = since === "now" ? "now" : Number.isNaN(Number(since)) ? since : Number(since);
  const floor = visible && docIds && hooks.sequenceFloor && typeof asked === "number" ? hooks.sequenceFloor(docIds) : 0;
  const options: PouchDB.ChangesOptions = {
    since: typeof asked === "number" ? Math.max(asked, floor) : asked,
    limit: Math.min(numberParam(query, "limit") ?? MAX_CHANGES_LIMIT, MAX_CHANGES_LIMIT),
    style: query.get("style") === "all_docs" ? "all_docs" : "main_only",
    include_docs: flag(query, "include_docs"),
    conflicts: flag(query, "conflicts"),
    descending: flag(query, "descending"),
    return_docs: true,
    doc_ids: docIds,
  };
  if (docIds?.length === 0) return { results: [], last_seq: (await db.info()).update_seq };
  const first = await db.changes(options);
  if (first.results.length > 0 || query.get("feed") !== "longpoll") return first;
  const resume = request.waiting?.();
  try {
    await nextChange(db, first.last_seq, request.signal, Math.min(numberParam(query, "timeout") ?? MAX_LONGPOLL_MS, MAX_LONGPOLL_MS));
  } finally {
    resume?.();
  }
  return db.changes({ ...options, since: first.last_seq });
}

/** Resolves at the first change after `since`, when the client leaves, or after `timeoutMs`. */
function nextChange(db: Database, since: number | string, signal: AbortSignal, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const feed = db.changes({ since, live: true, limit: 1 });
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      feed.cancel();
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    signal.addEventListener("abort", done);
    feed.on("change", done);
    feed.on("error", done);
  });
}

function ok(json: unknown): CouchReply {
  return { status: 200, json };
}

function created(json: unknown): CouchReply {
  return { status: 201, json };
}

function notAllowed(method: string): WireError {
  return new WireError("BAD_REQUEST", `${method} is not allowed here`, 405);
}

function flag(query: URLSearchParams, name: string): boolean {
  return query.get(name) === "true";
}

function numberParam(query: URLSearchParams, name: string): number | undefined {
  const value = query.get(name);
  if (value === null) return undefined;
  const number = Number(value);
  if (!Number.isSafeInteger(number) || number < 0) throw new WireError("BAD_REQUEST", `${name} must be a whole number`);
  return number;
}

function jsonParam(query: URLSearchParams, name: string): unknown {
  const value = query.get(name);
  if (value === null) return undefined;
  try {
    return JSON.parse(value);
  } catch {
    throw new WireError("BAD_REQUEST", `${name} is not JSON`);
  }
}

function parseJson(body: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8") || "{}");
  } catch {
    throw new WireError("BAD_REQUEST", "the request body is not JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new WireError("BAD_REQUEST", "the request body must be a JSON object");
  return value as Record<string, unknown>;
}

/** PouchDB errors carry CouchDB's status and name; wire errors carry ours; both become CouchDB's error shape. */
function errorReply(err: unknown): CouchReply {
  if (err instanceof WireError) return { status: err.httpStatus, json: { error: couchErrorName(err), reason: err.message } };
  const pouch = err as { status?: unknown; name?: unknown; message?: unknown; reason?: unknown };
  const status = typeof pouch.status === "number" && pouch.status >= 400 && pouch.status < 600 ? pouch.status : 500;
  return { status, json: { error: typeof pouch.name === "string" ? pouch.name : "unknown_error", reason: String(pouch.reason ?? pouch.message ?? err) } };
}

function couchErrorName(err: WireError): string {
  if (err.code === "REFUSED") return "forbidden";
  if (err.code === "NOT_FOUND") return "not_found";
  if (err.code === "TOO_LARGE") return "too_large";
  return "bad_request";
}
