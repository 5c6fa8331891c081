import type { Duplex } from "node:stream";
import path from "node:path";
import { BleTransport } from "../ble/ble-transport";
import { MdnsTransport } from "../discovery/mdns-transport";
import { DiscoveryBeacons, type BeaconPeer } from "../discovery/beacons";
import { StaticTransport } from "../discovery/static-transport";
import type { PeerTable } from "../discovery/peer-table";
import type { DialEntry, Transport } from "../discovery/transport";
import type { Identity } from "../identity";
import { joinAddress } from "../protocol/address";
import { type OnionClientAuth, type TorStatus, TorTransport } from "../tor/tor-transport";
import type { DiscoveryOptions } from "./options";

/** What a transport is built from when its device starts. */
export interface TransportContext {
  identity: Identity;
  /** The wire listener's host and port (the port is known once it listens). */
  host: string;
  port: number;
  /** The name the device announces. */
  name?: string;
  /** The device's storage directory, for a transport that keeps state (Tor's keys). */
  storageDir?: string;
  discovery: DiscoveryOptions;
  /** The peers private discovery announces beacons for and recognises (known and paired, with proven keys). */
  beaconPeers?: () => BeaconPeer[];
  /** Tor client authorisation (both ways), from the keys the device shares with its peers. */
  onionClients?: OnionClientAuth;
}

/** Builds a transport for a starting device, or nothing when its options do not ask for one. */
export type TransportFactory = (context: TransportContext) => Transport | undefined;

/** A transport handed to the device ready-made, or a factory for one. */
export type TransportSource = Transport | TransportFactory;

const mdns: TransportFactory = ({ discovery, identity, port, name, beaconPeers }) => {
  if (!discovery.mdns) return undefined;
  const beacons = beaconsFor(discovery, identity, beaconPeers);
  // A private announcement names nobody: no id, and no name either (names identify too).
  return new MdnsTransport({ ...discovery.mdns, deviceId: identity.deviceId, port, name: beacons ? undefined : name, beacons });
};

/** A private device's beacons (each transport its own: they cache per epoch). */
function beaconsFor(discovery: DiscoveryOptions, identity: Identity, beaconPeers?: () => BeaconPeer[]): DiscoveryBeacons | undefined {
  const privately = discovery.privateDiscovery;
  return privately ? new DiscoveryBeacons(identity, beaconPeers ?? (() => []), privately === true ? undefined : privately.epochMs) : undefined;
}

const ble: TransportFactory = ({ discovery, identity, beaconPeers }) => (discovery.ble ? new BleTransport({ ...discovery.ble, deviceId: identity.deviceId, beacons: beaconsFor(discovery, identity, beaconPeers) }) : undefined);

const tor: TransportFactory = ({ discovery, identity, host, port, storageDir, onionClients }) => {
  const options = discovery.tor;
  if (!options) return undefined;
  const torDir = storageDir && path.join(storageDir, "tor");
  const launch = options.attach ? undefined : { ...options.launch, dataDir: options.launch?.dataDir ?? path.join(torDir!, "data") };
  const target = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host;
  return new TorTransport({ ...options, launch, identity, target: joinAddress(target, port), keyFile: torDir && path.join(torDir, "onion-key"), clientAuth: onionClients });
};

/** Even with no address configured yet (addKnownPeer may bring some); none in Tor-only mode, which dials nothing directly. */
const staticAddresses: TransportFactory = ({ discovery, identity }) =>
  discovery.staticProbeIntervalMs === 0 || (discovery.tor && discovery.tor.only) ? undefined : new StaticTransport({ identity, entries: [], probeIntervalMs: discovery.staticProbeIntervalMs });

/**
 * The transports a device can run, in this order. Another transport is a folder of its own and one line
 * here; a package's own goes into DiscoveryOptions.transports instead, as an instance or a factory.
 */
export const BUILT_IN_TRANSPORTS: readonly TransportFactory[] = [mdns, ble, tor, staticAddresses];

/** The device's transports: those it was given, then the built-in ones its options ask for. */
export function createTransports(context: TransportContext): Transport[] {
  const sources = [...(context.discovery.transports ?? []), ...BUILT_IN_TRANSPORTS];
  return sources.flatMap((source) => {
    const transport = typeof source === "function" ? source(context) : source;
    return transport ? [transport] : [];
  });
}

/**
 * Hands an address to the first transport that dials it; false when none does. Onion addresses go only
 * to Tor this way: looked up anywhere else they would leak to DNS.
 */
export function probeAddress(transports: readonly Transport[], entry: DialEntry): boolean {
  const taker = transports.find((transport) => transport.add && transport.canDial?.(entry.address));
  taker?.add!(entry);
  return !!taker;
}

/** What a device's transports tell it. */
export interface DeviceTransportEvents {
  warning(err: Error, transport: string): void;
  /** A socket a transport accepted (BLE, Tor), for the wire listener. */
  connection(socket: Duplex): void;
  tor(status: TorStatus): void;
  keyChanged(change: { expectedId: string; address: string; answeredBy?: string }): void;
}

/**
 * The transports of one start of a device: built from its options when the listener's port is known,
 * attached to its peer table, told the addresses the device dials, and stopped (goodbyes first) at stop.
 */
export class DeviceTransports {
  private transports: Transport[] = [];
  private tor?: TorTransport;

  constructor(private readonly events: DeviceTransportEvents) {}

  get all(): readonly Transport[] {
    return this.transports;
  }

  get torTransport(): TorTransport | undefined {
    return this.tor;
  }

  /** Builds and starts them; `configured` are the addresses known before the start (configured and paired peers). */
  async start(context: TransportContext, peerTable: PeerTable, configured: DialEntry[]): Promise<void> {
    this.transports = createTransports(context);
    this.tor = this.transports.find((transport): transport is TorTransport => transport instanceof TorTransport);
    this.tor?.onStatus((status) => this.events.tor(status));
    for (const entry of configured) probeAddress(this.transports, entry);
    for (const transport of this.transports) {
      peerTable.attach(transport);
      transport.on("warning", (err) => this.events.warning(err, transport.name));
      transport.on("connection", (socket) => this.events.connection(socket));
      transport.on("key-changed", (change) => this.events.keyChanged(change));
    }
    await Promise.all(this.transports.map((transport) => transport.start()));
  }

  /** Probes a peer's address with the transport that dials it (Tor for onion addresses). */
  probe(entry: DialEntry): void {
    probeAddress(this.transports, entry);
  }

  /** Transports that were asked for but cannot run here (BLE with no adapter), with the reason. */
  get unavailable(): Array<{ name: string; reason: string }> {
    return this.transports.flatMap((transport) => (transport.unavailable ? [{ name: transport.name, reason: transport.unavailable }] : []));
  }

  async stop(): Promise<void> {
    await Promise.all(this.transports.map((transport) => transport.stop().catch((err: Error) => this.events.warning(err, transport.name))));
  }
}
