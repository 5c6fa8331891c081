import { randomBytes } from "node:crypto";
import type { Database } from "./database";

/** A document id that sorts by time (readings listed in order) and does not collide between devices. */
export function newDocumentId(now = new Date()): string {
  return `${now.toISOString()}-${randomBytes(4).toString("hex")}`;
}

/** Whether a value can be stored as a document's body: a plain object, not an array or a Buffer. */
export function isDocumentBody(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);
}

/** Writes `body` as a document, with a new time-ordered id unless it names its own `_id`. */
export async function putDocument(db: Database, body: Record<string, unknown>): Promise<{ id: string; rev: string }> {
  const doc = { ...body };
  if (typeof doc._id !== "string" || doc._id === "") doc._id = newDocumentId();
  const result = await db.put(doc as { _id: string });
  return { id: result.id, rev: result.rev };
}

/** A document field read as a time: milliseconds since 1970 or a date string; NaN when it is neither. */
export function timeOf(value: unknown): number {
  const ms = typeof value === "number" ? value : typeof value === "string" ? Date.parse(value) : NaN;
  return Number.isFinite(ms) ? ms : NaN;
}
