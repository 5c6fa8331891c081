import type { Node, NodeAPI } from "node-red";
import { isStorageFull, type Device } from "../../lib";

/** What an identity-config node offers the peer nodes that point at it. */
export interface IdentityConfigNode extends Node {
  device?: Device;
  /** Resolves with the listening port; rejects with the reason the identity cannot run. */
  ready: Promise<number>;
}

/**
 * Finds the identity a peer node is configured with and waits for its listener. A missing or broken
 * identity becomes a red status and a rejected promise rather than an exception in the constructor.
 */
export function useIdentity(RED: NodeAPI, node: Node, identityId: string | undefined): { identity?: IdentityConfigNode; ready: Promise<Device> } {
  const identity = identityId ? (RED.nodes.getNode(identityId) as IdentityConfigNode | null) : null;
  if (!identity) {
    const missing = Promise.reject(new Error(RED._("peer-mesh.errors.no-identity")));
    missing.catch(() => undefined);
    node.status({ fill: "red", shape: "ring", text: RED._("peer-mesh.status.no-identity") });
    return { ready: missing };
  }
  node.status({ fill: "grey", shape: "ring", text: RED._("peer-mesh.status.starting") });
  const ready = identity.ready.then(() => {
    if (!identity.device) throw new Error(RED._("peer-mesh.errors.no-identity"));
    return identity.device;
  });
  ready.catch((err: Error) => node.status({ fill: "red", shape: "ring", text: shorten(err.message) }));
  return { identity, ready };
}

/** Status badges have room for a few words only. */
export function shorten(text: string, max = 40): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** The error code a flow can switch on (msg.error.code in a Catch node) and a readable status. */
export function errorStatus(err: unknown): { fill: "red"; shape: "ring"; text: string } {
  const code = (err as { code?: unknown })?.code;
  return { fill: "red", shape: "ring", text: shorten(typeof code === "string" ? codeWords(code) : (err as Error)?.message ?? String(err)) };
}

/** An error code as words for a badge: UNKNOWN_PEER → "unknown peer". */
function codeWords(code: string): string {
  return code.toLowerCase().replace(/_/g, " ");
}

/**
 * A few words on why a sync or send failed, for a status badge: a full disk (here, or the peer's: it
 * answered 507) reads differently from an unreachable peer, so the user knows where to look.
 */
export function failureReason(RED: NodeAPI, err: unknown): string {
  const { code, status } = (err ?? {}) as { code?: unknown; status?: unknown };
  if (status === 507) return RED._("peer-mesh.reasons.peer-storage-full");
  if (isStorageFull(err)) return RED._("peer-mesh.reasons.storage-full");
  if (typeof code === "string" && /^[A-Z_]+$/.test(code)) return codeWords(code);
  return RED._("peer-mesh.reasons.failed");
}

/** The code a flow switches on for a failure: the wire's own, or STORAGE_FULL for a full disk on either side. */
export function failureCode(err: unknown): string | undefined {
  const { code, status } = (err ?? {}) as { code?: unknown; status?: unknown };
  if (status === 507 || isStorageFull(err)) return "STORAGE_FULL";
  return typeof code === "string" ? code : undefined;
}
