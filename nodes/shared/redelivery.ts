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
/** Since the process started: messages handed over again after a drop, and those given up (bounds, expiry). */
const counts = { handedOverAgain: 0, lost: 0 };

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
  counts.lost += dropped;
  return dropped;
}

/** How many messages wait for a peer receive of `identityId`. */
export function heldFor(identityId: string): number {
  return held.get(identityId)?.length ?? 0;
}

/** A msg that had been dropped reached the flow. */
export function countHandedOverAgain(): void {
  counts.handedOverAgain += 1;
}

/** Prometheus text for the two process-wide counters (appended to the identities' metrics). */
export function redeliveryMetrics(): string {
  return [
    "# HELP peer_mesh_redelivered_total Acknowledged messages a deploy dropped on their way into the flow and that were handed over again.",
    "# TYPE peer_mesh_redelivered_total counter",
    `peer_mesh_redelivered_total{scope="process"} ${counts.handedOverAgain}`,
    "# HELP peer_mesh_redelivery_lost_total Acknowledged messages a deploy dropped that no peer receive took in time (1,000 kept per identity, 10 minutes).",
    "# TYPE peer_mesh_redelivery_lost_total counter",
    `peer_mesh_redelivery_lost_total{scope="process"} ${counts.lost}`,
    "",
  ].join("\n");
}

/** The held messages a new peer receive of `identityId` listening on `pattern` takes over, oldest first. */
export function takeRedeliveries(identityId: string, pattern: string, now = Date.now()): NodeMessage[] {
  const queue = held.get(identityId);
  if (!queue) return [];
  const taken: NodeMessage[] = [];
  const kept: Held[] = [];
  for (const entry of queue) {
    if (now - entry.since >= HOLD_MS) {
      counts.lost += 1;
      continue;
    }
    if (topicMatches(pattern, entry.topic)) taken.push(entry.msg);
    else kept.push(entry);
  }
  if (kept.length > 0) held.set(identityId, kept);
  else held.delete(identityId);
  return taken;
}
