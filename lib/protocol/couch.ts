/** The CouchDB-protocol vocabulary the wire carries and the replication endpoint answers. */

/** One CouchDB-protocol request on a database, whatever carried it (HTTP/2 stream or HTTP/1.1). */
export interface CouchRequest {
  method: string;
  /** Path segments after the database's own path, decoded: [] is the database, ["_changes"], [docId], [docId, attachment]. */
  segments: string[];
  query: URLSearchParams;
  readBody(limit: number): Promise<Buffer>;
  /** Aborts when the client goes away, which ends a long poll. */
  signal: AbortSignal;
  /** Suspends the carrier's idle timeout while a long poll waits for a change; the returned function restores it. */
  waiting?(): () => void;
}

export type CouchReply = { status: number; json: unknown } | { status: number; binary: Buffer; contentType: string };

/** What the requesting peer may do on this database, as the ACL decided. */
export interface CouchAccess {
  read: boolean;
  write: boolean;
}

/**
 * Why a replicated mesh document was refused, beside the sentence (reason) for people, so that the
 * replicating side acts on the code: "expired" and "delivered" copies are over (a cloud server's are
 * pruned), "full" and "limit" may pass later, the others never will.
 */
export type RefusalCode = "expired" | "delivered" | "invalid" | "replayed" | "conflict" | "full" | "limit" | "revoked";

export type BulkResult = { ok: true; id: string; rev: string } | { id: string; error: string; reason: string; code?: RefusalCode };
