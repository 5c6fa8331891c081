import type { PeerDirectory } from "../discovery/peer-directory";
import { matchDeviceIds } from "../identity";
import type { PeerTable } from "../discovery/peer-table";
import type { Transport } from "../discovery/transport";
import type { Mesh } from "../mesh/mesh";
import { isOnionHostPort } from "../protocol/address";
import { WireError } from "../protocol/errors";
import type { PeerEndpoint } from "../wire/client-pool";

export interface DialerOptions {
  peers: PeerDirectory;
  peerTable: PeerTable;
  /** The device's transports, once started. */
  transports(): readonly Transport[];
  /** Tor is on (its transport may not be up yet). */
  hasTor: boolean;
  /** Every connection through Tor: no direct address is dialled. */
  torOnly: boolean;
  /** Onion addresses peers published in the mesh. */
  mesh(): Mesh | undefined;
  /** The key `id` rotated from (a rotation followed here): its configured and paired addresses are `id`'s too. */
  predecessorOf?(id: string): string | undefined;
}

/**
 * Who a reference names and how to reach them: a configured peer by id, name or id prefix, a peer in
 * range by id or prefix, a paired one by id; then the way there (the transport that found it, a
 * configured, paired or published address; onion addresses through Tor only, so they never reach DNS).
 */
export class Dialer {
  /** Addresses learned from confirmed pairing codes (the storage keeps them across restarts). */
  private readonly pairedAddresses = new Map<string, string>();

  constructor(private readonly options: DialerOptions) {}

  /** Remembers where a paired peer listens. */
  notePaired(id: string, address: string): void {
    this.pairedAddresses.set(id, address);
  }

  hasPairedAddress(id: string): boolean {
    return this.pairedAddresses.has(id);
  }

  /** Addresses this device can dial: direct ones unless Tor only, onion ones when Tor is on. */
  usable(addresses: string[]): string[] {
    return addresses.filter((address) => (isOnionHostPort(address) ? this.options.hasTor : !this.options.torOnly));
  }

  /** As resolve, but undefined for a reference that names nobody (the mesh asks about names in documents). */
  tryResolve(reference: string): string | undefined {
    try {
      return this.resolve(reference);
    } catch {
      return undefined;
    }
  }

  /** A configured peer by id, name or id prefix, else a peer in range or a paired one by id (or prefix, in range). */
  resolve(reference: string): string {
    const { peers, peerTable } = this.options;
    try {
      return peers.resolve(reference).id;
    } catch (err) {
      // By id or id prefix only: the name a peer in range announces is its own claim (the configured
      // names were tried above).
      const inRange = matchDeviceIds(reference, peerTable.list().map((peer) => peer.id));
      if (inRange.length === 1) return inRange[0];
      // A paired peer not in range: by its whole id (it has no configured name).
      const wanted = reference.trim().toLowerCase();
      if (this.pairedAddresses.has(wanted)) return wanted;
      // The key a known peer moved to, before any transport has found it: reached at the old key's addresses.
      if (this.options.predecessorOf?.(wanted) !== undefined) return wanted;
      throw err;
    }
  }

  /** The way to the peer `reference` names, by the transport that sees it or an address this device knows. */
  endpoint(reference: string): PeerEndpoint {
    const { peers, peerTable, torOnly } = this.options;
    const id = this.resolve(reference);
    const seen = peerTable.bestRoute(id);
    if (seen && !torOnly) {
      const via = this.options.transports().find((transport) => transport.name === seen.transport && !transport.carriesIp);
      // A radio's own address (BLE) is dialled by the radio; an address some transport takes, as any other.
      if (via && !via.canDial?.(seen.address)) return { id, address: `${seen.address}.${via.name}`, dial: () => via.connect(seen.address) };
      return this.endpointAt(id, seen.address);
    }
    // Not in range (or Tor only): a configured, paired or mesh-published address, onion ones only in Tor-only mode.
    const old = this.options.predecessorOf?.(id);
    const candidates = [peerTable.route(id, "tor")?.address, peers.get(id)?.address, this.pairedAddresses.get(id), ...(old ? [peers.get(old)?.address, this.pairedAddresses.get(old)] : []), this.options.mesh()?.onionOf(id)];
    const address = candidates.find((candidate) => candidate && (!torOnly || isOnionHostPort(candidate)));
    if (!address) throw new WireError("UNREACHABLE", `peer ${peers.label(id)} is not in range and has no ${torOnly ? "onion address known to this device (Tor only)" : "configured address"}`);
    return this.endpointAt(id, address);
  }

  /** The way to `address`: through the transport that dials it (Tor's SOCKS port for an onion address), plain TCP otherwise. */
  endpointAt(id: string, address: string): PeerEndpoint {
    const via = this.options.transports().find((transport) => !transport.carriesIp && transport.canDial?.(address));
    if (via) return { id, address, dial: () => via.connect(address), connectTimeoutMs: via.connectTimeoutMs };
    if (isOnionHostPort(address)) throw new WireError("UNREACHABLE", `peer ${this.options.peers.label(id)} is reachable only through Tor (${address}); turn Tor on in this device's identity`);
    return { id, address };
  }
}
