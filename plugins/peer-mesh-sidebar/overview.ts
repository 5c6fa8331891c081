import { CLOUD_PEER, type Device } from "../../lib";
import type { RunningIdentity } from "../../nodes/shared/running-identities";

export interface PeerRow {
  id: string;
  name?: string;
  transports: string[];
  address: string;
  trusted: boolean;
  verified: boolean;
  lastSeen: number;
  /** When a sync session with this peer last finished, if one did. */
  lastSync?: number;
  /** Other devices whose signed groups let this peer in (introducers), with the group. */
  introducedBy: Array<{ owner: string; name?: string; group: string }>;
}

export interface IdentityOverview {
  nodeId: string;
  name?: string;
  deviceId: string;
  port: number | null;
  peers: PeerRow[];
  /** Devices this one exchanged mesh documents with (from its signed device document), with last sync times. */
  neighbours: Array<{ id: string; name?: string; lastSync?: number; seen: number }>;
  cloudSync?: number;
  /** Devices let in by another owner's signed group (an introducer), whether in range or not. */
  introduced: Array<{ id: string; name?: string; owner: string; ownerName?: string; group: string }>;
  /** Keys refused here because an owner revoked them (this device, or one whose groups a rule names). */
  revoked: Array<{ id: string; name?: string; by: Array<{ owner: string; name?: string }> }>;
  /** Peers that moved to a new key and are followed here (the old key is refused). */
  rotated: Array<{ from: string; to: string; name?: string; at: number }>;
  /** Known peers at whose address another key answers ("key changed"), until their own answers again. */
  keyChanges: Array<{ peerId: string; name?: string; address: string; answeredBy: string; firstSeen: number }>;
  /** Tor's bootstrap progress and the onion address, when Tor is on. */
  tor?: { state: string; progress: number; summary: string; onion?: string; published: boolean; error?: string };
}

function neighboursOf(device: Device): IdentityOverview["neighbours"] {
  const syncs = device.lastSyncs;
  let recorded: Record<string, number> = {};
  try {
    recorded = device.mesh.ownNeighbours();
  } catch {
    // no storage, no mesh: only the sessions this runtime saw
  }
  const ids = new Set([...Object.keys(recorded), ...[...syncs.keys()].filter((id) => id !== CLOUD_PEER)]);
  return [...ids].map((id) => ({ id, name: device.peers.nameOf(id), lastSync: syncs.get(id), seen: recorded[id] ?? syncs.get(id) ?? 0 }));
}

/** What the sidebar shows: every running identity, its peers in range and its mesh neighbours. */
export function overview(identities: RunningIdentity[]): IdentityOverview[] {
  return identities.map(({ nodeId, name, device }) => ({
    nodeId,
    name,
    deviceId: device.id,
    port: device.port ?? null,
    peers: device.peerTable.list().map((peer) => ({
      id: peer.id,
      name: peer.name,
      transports: peer.transports,
      address: peer.address,
      trusted: peer.trusted,
      verified: peer.verified,
      lastSeen: peer.lastSeen,
      lastSync: device.lastSyncs.get(peer.id),
      introducedBy: device.acl.introducersOf(peer.id).map(({ owner, group }) => ({ owner, name: device.peers.nameOf(owner), group })),
    })),
    neighbours: neighboursOf(device),
    cloudSync: device.lastSyncs.get(CLOUD_PEER),
    introduced: device.acl.introduced().map(({ member, owner, group }) => ({ id: member, name: device.peers.nameOf(member), owner, ownerName: device.peers.nameOf(owner), group })),
    rotated: device.acl.listRotations().map(({ from, to, at }) => ({ from, to, name: device.peers.nameOf(to) ?? device.peers.nameOf(from), at })),
    revoked: device.acl.revocations().map(({ id, by }) => ({ id, name: device.peers.nameOf(id), by: by.map((owner) => ({ owner, name: owner === device.id ? name : device.peers.nameOf(owner) })) })),
    keyChanges: device.keyChanges.map(({ peerId, name, address, answeredBy, firstSeen }) => ({ peerId, name, address, answeredBy, firstSeen })),
    ...(device.torStatus ? { tor: device.torStatus } : {}),
  }));
}
