import type { Authorizer } from "../protocol/wire";
import type { Rule } from "../acl/rules";
import type { BleTransportOptions } from "../ble/ble-transport";
import type { KnownPeer } from "../discovery/peer-directory";
import type { MdnsTransportOptions } from "../discovery/mdns-transport";
import type { Identity, RotationStatement } from "../identity";
import type { MeshOptions } from "../mesh/mesh";
import type { TorTransportOptions } from "../tor/tor-transport";
import type { WireLimits } from "../wire/limits";
import type { TransportSource } from "./transports";

export interface DeviceOptions {
  identity: Identity;
  /**
   * The statement that moved this device to `identity` from its old key (signRotation): published in its
   * device document, so that its peers, group owners and rules follow it to the new key.
   */
  rotatedFrom?: RotationStatement;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  peers?: KnownPeer[];
  /** Replaces the ACL entirely with a function (tests, embedding hosts). */
  authorize?: Authorizer;
  /** Rules and this device's own groups; without rules, known peers may do anything and unknown keys nothing. */
  /**
   * rules, this device's groups, and the keys it revokes: refused here, and everywhere a rule names this
   * device's groups once its signed revocation list has travelled there (through the mesh).
   */
  acl?: { rules?: Rule[]; groups?: Array<{ name: string; members: string[] }>; revoked?: string[] };
  /** Where this device keeps its PouchDB databases; without it, groups live in memory and no database is served. */
  storageDir?: string;
  /** Store-and-forward settings (quota, fallback to flood, ...); the mesh needs storageDir. */
  mesh?: Pick<MeshOptions, "quota" | "fallbackMs" | "routeFreshMs" | "maxTtlMs" | "maxDevices" | "sweepIntervalMs">;
  /** The databases this device keeps and serves to peers (CouchDB protocol at /db/<name>), as the ACL allows. */
  databases?: string[];
  limits?: Partial<WireLimits>;
  idleConnectionMs?: number;
  /**
   * How often the process's freed C-heap memory is handed back to the system while this device runs
   * (glibc's malloc_trim through the optional koffi package; Linux only). 0 turns it off for this device;
   * one timer serves every device in the process, at the shortest interval any of them asks.
   */
  memoryTrimIntervalMs?: number;
  /** Announced to other devices alongside the id. */
  name?: string;
  discovery?: DiscoveryOptions;
}

export interface DiscoveryOptions {
  /** LAN discovery; off unless given, so that nothing multicasts where it was not asked to. */
  mdns?: false | Omit<MdnsTransportOptions, "deviceId" | "port" | "name" | "beacons">;
  /**
   * Announce no stable identifier: mDNS and BLE carry beacons only known and paired peers recognise (see
   * DiscoveryBeacons), changing every epoch (10 minutes unless given), and no id or name; and the
   * listener shows its certificate only to clients that send its server name (serverNameFor), i.e.
   * that know its id.
   */
  privateDiscovery?: boolean | { epochMs?: number };
  /** How often configured peer addresses are probed; 0 turns probing off. */
  staticProbeIntervalMs?: number;
  maxPeers?: number;
  /**
   * Further transports: instances, or factories the device calls at start with its port and identity
   * (a package's own radio); the device starts and stops them.
   */
  transports?: TransportSource[];
  /** Bluetooth LE through noble and bleno (optional packages; "unavailable" where they cannot load), or a simulated radio's bindings. */
  ble?: false | Omit<BleTransportOptions, "deviceId" | "beacons">;
  /** Reachable as a Tor onion service, and reaching peers' onion addresses through tor. */
  tor?: false | TorOptions;
}

export interface TorOptions extends Pick<TorTransportOptions, "attach" | "probeIntervalMs" | "probeTimeoutMs" | "connectTimeoutMs" | "retryMs"> {
  /** Start a tor of the device's own (the default without `attach`); its data lives under storageDir unless dataDir says otherwise. */
  launch?: { binary?: string; dataDir?: string; torrc?: string[] };
  /**
   * Every connection through Tor: addresses other than onion ones are neither dialled nor put in the
   * pairing code, and the listener must accept connections from this machine only.
   */
  only?: boolean;
}

/** Settings that contradict each other fail here, before anything listens or announces. */
export function checkDeviceOptions(options: DeviceOptions): void {
  if (options.discovery?.mdns && isLoopback(options.host ?? "127.0.0.1")) {
    throw new Error(`LAN discovery would announce this device to the network, but its listener accepts connections only from this machine (host ${options.host ?? "127.0.0.1"}); listen on 0.0.0.0 or a LAN address`);
  }
  const trimMs = options.memoryTrimIntervalMs;
  if (trimMs !== undefined && !(Number.isFinite(trimMs) && trimMs >= 0)) throw new Error(`memoryTrimIntervalMs must be 0 (off) or a positive number of milliseconds, not ${trimMs}`);
  checkTorOptions(options);
}

/** Tor-only devices must not be found or reached any other way. */
function checkTorOptions(options: DeviceOptions): void {
  const tor = options.discovery?.tor;
  if (!tor) return;
  if (!tor.attach && !tor.launch?.dataDir && !options.storageDir) throw new Error("Tor needs a storage directory (storageDir) for its data and the onion service's key");
  if (!tor.only) return;
  if (options.discovery?.mdns) throw new Error("Tor only and LAN discovery exclude each other: mDNS announces this device on the LAN");
  if (options.discovery?.ble) throw new Error("Tor only and Bluetooth LE exclude each other: BLE advertises this device to anyone nearby");
  if (!isLoopback(options.host ?? "127.0.0.1")) throw new Error(`Tor only: the listener on ${options.host} would accept direct connections too; listen on 127.0.0.1`);
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}
