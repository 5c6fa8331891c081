import { randomUUID } from "node:crypto";

/**
 * Requests a peer receive node has output and a peer reply node may answer, by the handle the msg
 * carries (msg._peerReply). A string survives Node-RED's cloning of a msg between nodes, where a
 * function would not; the way to answer stays here. Entries leave when answered or when the sender's
 * wait is over, so the map holds at most what is waiting now.
 */
const waiting = new Map<string, (payload: unknown) => void>();

/** Keeps a request's answer function until `withinMs` has passed; returns the handle for msg._peerReply. */
export function holdReply(answer: (payload: unknown) => void, withinMs: number): string {
  const handle = randomUUID();
  waiting.set(handle, answer);
  setTimeout(() => waiting.delete(handle), withinMs).unref();
  return handle;
}

/** Answers the request behind `handle`; false when there is none (answered, timed out, or never a request). */
export function answerReply(handle: unknown, payload: unknown): boolean {
  const answer = typeof handle === "string" ? waiting.get(handle) : undefined;
  if (!answer) return false;
  try {
    answer(payload);
  } catch (err) {
    // A reply too large may be followed by a smaller one; any other refusal ends the request here too.
    if ((err as { code?: unknown }).code !== "TOO_LARGE") waiting.delete(handle as string);
    throw err;
  }
  waiting.delete(handle as string);
  return true;
}
