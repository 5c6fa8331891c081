import { type BeaconPeer, type BeaconSelf, pairSecret } from "../discovery/beacons";
import { type OnionClientKey, pairClientKey, randomClientKey } from "../tor/client-auth";
import type { OnionClientAuth } from "../tor/tor-transport";

/** A pairing code's key is replaced by a new one after this long; the old one still opens the service a while. */
const PAIRING_KEY_REUSE_MS = 10 * 60_000;
/** A pairing code's key opens the service for this long after it was made. */
const PAIRING_KEY_LIFETIME_MS = 30 * 60_000;

export interface OnionClientsOptions {
  self: BeaconSelf;
  /** The peers that may reach this device through its onion service, most wanted first, with the keys handshakes proved. */
  admitted(): BeaconPeer[];
  /** What this device knows of a peer: its key, once a handshake proved it. */
  peer(id: string): BeaconPeer;
  /** Whether this device's own onion service admits only its peers (private discovery). */
  restricted: boolean;
}

/**
 * Tor client authorisation from what two devices already share: the key for a service is derived from
 * the pair's secret (ECDH of their device keys, as for beacons), so nothing is distributed and only
 * the two of them can compute it. A peer whose key this device has not yet seen gets the ids-only key
 * (what beacons use then too); a guest pairing through Tor gets a key of its own in the pairing code.
 */
export class OnionClients implements OnionClientAuth {
  private readonly derived = new Map<string, OnionClientKey>();
  private pairingKeys: Array<{ key: OnionClientKey; made: number }> = [];

  constructor(private readonly options: OnionClientsOptions) {}

  authorized(): string[] | undefined {
    if (!this.options.restricted) return undefined;
    const now = Date.now();
    this.pairingKeys = this.pairingKeys.filter((entry) => now - entry.made < PAIRING_KEY_LIFETIME_MS);
    const { self } = this.options;
    const peers = this.options.admitted().filter((peer) => peer.id !== self.deviceId);
    return [...this.pairingKeys.map((entry) => entry.key.publicKey), ...peers.map((peer) => this.keyFor(peer, self.deviceId).publicKey)];
  }

  credentials(peerId: string): string[] {
    const peer = this.options.peer(peerId);
    // The pair's key when this device knows the peer's key; the ids-only key for a peer that has not seen this device's yet.
    return [...new Set([this.keyFor(peer, peerId).privateKey, this.keyFor({ id: peerId }, peerId).privateKey])];
  }

  /** The private key a pairing code carries (a new one every ten minutes): it opens this device's service for half an hour. */
  pairingKey(): string | undefined {
    if (!this.options.restricted) return undefined;
    const now = Date.now();
    let current = this.pairingKeys.find((entry) => now - entry.made < PAIRING_KEY_REUSE_MS);
    if (!current) this.pairingKeys.unshift((current = { key: randomClientKey(), made: now }));
    return current.key.privateKey;
  }

  private keyFor(peer: BeaconPeer, serviceOwnerId: string): OnionClientKey {
    const label = `${peer.id}:${peer.key?.toString("base64") ?? ""}:${serviceOwnerId}`;
    let key = this.derived.get(label);
    if (!key) {
      this.derived.set(label, (key = pairClientKey(pairSecret(this.options.self, peer), serviceOwnerId)));
      if (this.derived.size > 4_096) this.derived.delete(this.derived.keys().next().value as string);
    }
    return key;
  }
}
