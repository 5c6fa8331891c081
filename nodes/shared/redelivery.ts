import type { NodeMessage } from "node-red";
import { topicMatches } from "../../lib";

/** Messages held per identity at most, and for how long: the receiving node may have been deleted for good. */
const MAX_HELD = 1_000;
const HOLD_MS = 10 * 60_000;

interface Held {
  topic: string;
  msg: NodeMessage;
  since: number;
}

/** Process-wide: a full deploy replaces the peer receive nodes and the identity, not this module. */
const held = new Map<string, Held[]>();

/**
 * Keeps an acknowledged message that Node-RED dropped on its way into the flow (a deploy stopped the next
 * node between node.send and the delivery a turn later), for the next peer receive of the same identity
 * whose topic matches. Returns what it had to drop to stay within its bounds (to be logged).
 */
export function holdForRedelivery(identityId: string, topic: string, msg: NodeMessage, now = Date.now()): number {
  const queue = (held.get(identityId) ?? []).filter((entry) => now - entry.since < HOLD_MS);
  queue.push({ topic, msg, since: now });
  const dropped = Math.max(0, queue.length - MAX_HELD);
  held.set(identityId, queue.slice(dropped));
  return dropped;
}

/** The held messages a new peer receive of `identityId` listening on `pattern` takes over, oldest first. */
export function takeRedeliveries(identityId: string, pattern: string, now = Date.now()): NodeMessage[] {
  const queue = held.get(identityId);
  if (!queue) return [];
  const taken: NodeMessage[] = [];
  const kept: Held[] = [];
  for (const entry of queue) {
    if (now - entry.since >= HOLD_MS) continue;
    if (topicMatches(pattern, entry.topic)) taken.push(entry.msg);
    else kept.push(entry);
  }
  if (kept.length > 0) held.set(identityId, kept);
  else held.delete(identityId);
  return taken;
}
