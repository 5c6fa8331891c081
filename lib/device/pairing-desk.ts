import { advertisedHost, formatPairingCode, parsePairingCode } from "../acl/pairing";
import type { PairedPeer, PairedPeers } from "../acl/paired-peers";
import { DEFAULT_PAIRING_WINDOW_MS, type PeerRef, type PendingPairing, type PendingPairings } from "../acl/pending-pairings";
import type { DialEntry } from "../discovery/transport";
import { joinAddress } from "../protocol/address";
import { WireError } from "../protocol/errors";
import type { TorStatus, TorTransport } from "../tor/tor-transport";
import type { ClientPool, PeerEndpoint } from "../wire/client-pool";
import { type ClientResponse, errorFromResponse } from "../wire/http2-io";
import type { Dialer } from "./dialer";

export interface PairingDeskOptions {
  selfId: string;
  /** The name this device gives itself in a pairing request. */
  name?: string;
  host: string;
  port(): number | undefined;
  torOnly: boolean;
  tor(): TorTransport | undefined;
  /** The Tor client key a pairing code carries when this device's onion service admits only its peers. */
  onionPairingKey(): string | undefined;
  pairings: PendingPairings;
  dialer: Dialer;
  pool: ClientPool;
  /** Where confirmed pairings are kept across restarts (the device's storage), when it has storage. */
  store(): PairedPeers | undefined;
  peerRef(id: string): PeerRef;
  /** Adds the peer to this device's group (signed anew). */
  joinGroup(group: string, peerId: string): Promise<void>;
  probe(entry: DialEntry): void;
}

/** Pairing as a device offers it to its user (`device.pairing`): the code, asking, confirming, refusing. */
export interface DevicePairing {
  /** The text (and QR content) another device needs to ask this one to pair. */
  code(): string;
  /** Asks the device behind a pairing code to pair; both sides then show the same six digits. */
  request(code: string): Promise<PendingPairing>;
  /** Confirms a pairing: the peer joins this device's group `group`; `sas`, when given, must be this device's six digits. */
  confirm(requestId: string, options: { group: string; sas?: string }): Promise<PendingPairing>;
  /** Refuses a request waiting (incoming or outgoing); false when there was none by that id. */
  reject(requestId: string): boolean;
  /** The requests waiting for a confirmation, both ways. */
  list(): PendingPairing[];
  /**
   * Opens a pairing window after a physical action on a headless device (a button wired to peer discover):
   * the next pairing request arriving within `ms` may be accepted without typing the digits.
   */
  openWindow(ms?: number): { until: number };
  /** The peers this device paired with (kept with its storage), oldest first. */
  paired(): PairedPeer[];
}

/**
 * Pairing as the user goes through it: the code this device shows, asking the device behind another's
 * code, and confirming (the peer joins a group, its address is probed and kept across restarts).
 */
export class PairingDesk implements DevicePairing {
  constructor(private readonly options: PairingDeskOptions) {}

  /** The text (and QR content) another device needs to ask this one to pair. */
  code(): string {
    const { torOnly } = this.options;
    const port = this.options.port();
    if (port === undefined) throw new WireError("CLOSED", "the device is not listening yet");
    const tor = this.options.tor();
    const onion = tor?.onionAddress;
    if (torOnly && !onion) throw new WireError("CLOSED", `Tor has not added this device's onion service yet (${describeTor(tor?.status)})`);
    const addresses = [...(torOnly ? [] : [joinAddress(advertisedHost(this.options.host), port)]), ...(onion ? [onion] : [])];
    const onionKey = onion ? this.options.onionPairingKey() : undefined;
    return formatPairingCode({ id: this.options.selfId, addresses, ...(onionKey ? { onionKey } : {}) });
  }

  /** Asks the device behind a pairing code to pair; both sides then show the same six digits. */
  async request(code: string): Promise<PendingPairing> {
    const { dialer, torOnly } = this.options;
    const { id, addresses, onionKey } = parsePairingCode(code);
    // Tor needs the code's key (when it has one) to open the service at all: the devices share no key yet.
    const tor = this.options.tor();
    for (const address of addresses) if (tor?.canDial(address)) tor.expect(address, id, onionKey);
    const body = Buffer.from(JSON.stringify({ name: this.options.name }));
    // Direct addresses first (faster), then the onion address; in Tor-only mode the onion address alone.
    const usable = dialer.usable(addresses);
    if (usable.length === 0) {
      throw new WireError("UNREACHABLE", torOnly ? "the pairing code has no onion address, and this device connects through Tor only" : `the pairing code's device is reachable only through Tor (${addresses.join(", ")}); turn Tor on in this device's identity`);
    }
    let paired: { response: ClientResponse; keyingMaterial: Buffer } | undefined;
    let target!: PeerEndpoint;
    for (const address of usable) {
      target = dialer.endpointAt(id, address);
      try {
        paired = await this.options.pool.pair(target, body);
        break;
      } catch (err) {
        if (address === usable[usable.length - 1]) throw err;
      }
    }
    const { response, keyingMaterial } = paired!;
    if (response.status !== 200) throw errorFromResponse(response);
    return this.options.pairings.addOutgoing(this.options.peerRef(target.id), keyingMaterial, [target.address, ...usable.filter((address) => address !== target.address)]);
  }

  /**
   * Confirms a pairing: the peer joins this device's group `group`. `sas`, when given, must be the six
   * digits this device derived (see PendingPairings.take).
   */
  async confirm(requestId: string, options: { group: string; sas?: string }): Promise<PendingPairing> {
    const { pairings, dialer } = this.options;
    const pending = pairings.take(requestId, options.sas);
    await this.options.joinGroup(options.group, pending.peer.id);
    if (pending.address) {
      dialer.notePaired(pending.peer.id, pending.address);
      // Probed from now on, as it will be after a restart (paired peers join the configured addresses then).
      this.options.probe({ address: pending.address, expectedId: pending.peer.id, name: pending.peer.name });
    }
    pairings.settle(requestId);
    // Kept with the storage, so that the pairing (and where the peer listens) outlasts a restart.
    await this.options.store()?.add({ id: pending.peer.id, name: pending.peer.name, addresses: pending.addresses ?? (pending.address ? [pending.address] : []), group: options.group, pairedAt: Date.now() });
    return pending;
  }

  reject(requestId: string): boolean {
    return this.options.pairings.reject(requestId);
  }

  list(): PendingPairing[] {
    return this.options.pairings.list();
  }

  openWindow(ms = DEFAULT_PAIRING_WINDOW_MS): { until: number } {
    return this.options.pairings.openWindow(ms);
  }

  /** Where peers paired before this start listen (kept with the storage), for the dialer. */
  restore(): void {
    for (const peer of this.paired()) {
      const address = this.options.dialer.usable(peer.addresses)[0];
      if (address) this.options.dialer.notePaired(peer.id, address);
    }
  }

  isPaired(id: string): boolean {
    return this.options.dialer.hasPairedAddress(id) || !!this.options.store()?.get(id);
  }

  /** The peers this device paired with (kept with its storage), oldest first. */
  paired(): PairedPeer[] {
    return this.options.store()?.list() ?? [];
  }
}

function describeTor(status: TorStatus | undefined): string {
  if (!status) return "Tor is off";
  return status.error ?? `${status.state}, ${status.progress} %`;
}
