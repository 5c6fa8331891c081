import { isDeviceId, matchDeviceIds, shortId } from "../identity";
import { isAddress } from "../protocol/address";
import { WireError } from "../protocol/errors";

export interface KnownPeer {
  id: string;
  name?: string;
  /** host:port of the peer's listener, when known. */
  address?: string;
}

/** Turns a configured peer list into validated entries, with one sentence per problem. */
export function validateKnownPeers(input: unknown): { peers: KnownPeer[]; problems: string[] } {
  const peers: KnownPeer[] = [];
  const problems: string[] = [];
  if (input === undefined || input === null) return { peers, problems };
  if (!Array.isArray(input)) return { peers, problems: ["the known peers must be a list"] };
  input.forEach((raw: unknown, i) => {
    const entry = (raw ?? {}) as Record<string, unknown>;
    const id = typeof entry.id === "string" ? entry.id.trim().toLowerCase() : "";
    const name = typeof entry.name === "string" && entry.name.trim() ? entry.name.trim() : undefined;
    const address = typeof entry.address === "string" && entry.address.trim() ? entry.address.trim() : undefined;
    const label = name ?? `#${i + 1}`;
    if (!isDeviceId(id)) problems.push(`peer ${label}: "${id}" is not a device id (52 base32 characters)`);
    else if (address !== undefined && !isAddress(address)) problems.push(`peer ${label}: "${address}" is not host:port`);
    else peers.push({ id, name, address });
  });
  return { peers, problems };
}

/**
 * The peers this device knows by configuration. Answers "who is X" for senders (by id, name or an id
 * prefix of at least 8 characters) and "do we know this key" for the default authorisation.
 */
export class PeerDirectory {
  private readonly byId = new Map<string, KnownPeer>();
  /** Each configured name's peers (two peers may share one; resolving it then fails): a send by name looks up, not through every peer. */
  private readonly byName = new Map<string, KnownPeer[]>();

  constructor(peers: KnownPeer[] = []) {
    for (const peer of peers) this.add(peer);
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  /** Adds a peer, or replaces the one with the same id. */
  add(peer: KnownPeer): void {
    const replaced = this.byId.get(peer.id);
    if (replaced?.name !== undefined) {
      const rest = (this.byName.get(replaced.name) ?? []).filter((named) => named !== replaced);
      if (rest.length > 0) this.byName.set(replaced.name, rest);
      else this.byName.delete(replaced.name);
    }
    this.byId.set(peer.id, peer);
    if (peer.name !== undefined) this.byName.set(peer.name, [...(this.byName.get(peer.name) ?? []), peer]);
  }

  get(id: string): KnownPeer | undefined {
    return this.byId.get(id);
  }

  list(): KnownPeer[] {
    return [...this.byId.values()];
  }

  nameOf(id: string): string | undefined {
    return this.byId.get(id)?.name;
  }

  /** By whole id, then by the name configured for it (exact), then by id prefix (see matchDeviceIds). */
  resolve(reference: string): KnownPeer {
    // A whole id as stored (what the device passes on for every message once it has resolved a name).
    const stored = this.byId.get(reference);
    if (stored) return stored;
    const wanted = reference.trim();
    const exact = this.byId.get(wanted.toLowerCase());
    if (exact) return exact;
    const named = this.byName.get(wanted) ?? [];
    if (named.length === 1) return named[0];
    if (named.length > 1) throw new WireError("UNKNOWN_PEER", `more than one known peer is named "${wanted}"; use its device id`);
    const prefixed = matchDeviceIds(wanted, this.byId.keys());
    if (prefixed.length === 1) return this.byId.get(prefixed[0])!;
    throw new WireError("UNKNOWN_PEER", `no known peer is called "${wanted}"`);
  }

  label(id: string): string {
    return this.nameOf(id) ?? shortId(id);
  }
}
