import { Bonjour, Browser, Service } from "bonjour-service";
import { EventEmitter } from "node:events";
import net from "node:net";
import os from "node:os";
import type { Duplex } from "node:stream";
import { randomBytes } from "node:crypto";
import { isDeviceId } from "../identity";
import type { DiscoveryBeacons } from "./beacons";
import { joinAddress } from "../protocol/address";
import { dialTcp } from "./tcp";
import { RANK, Transport, TransportEvents } from "./transport";

export const SERVICE_TYPE = "peer-mesh";

export interface MdnsTransportOptions {
  deviceId: string;
  /** The wire listener's port, announced in the SRV record. */
  port: number;
  name?: string;
  /** An interface name ("eth1") or its IPv4 address; empty: every interface the OS offers. */
  interface?: string;
  /** How often this device re-announces itself. */
  announceIntervalMs?: number;
  /** A peer not heard for this long is lost (a crash sends no goodbye). */
  expireMs?: number;
  /**
   * Private discovery: announce beacons instead of the id and name, under an instance and host name
   * that change with each epoch, and recognise peers by theirs.
   */
  beacons?: DiscoveryBeacons;
}

/** A TXT string holds 255 bytes at most; beacons are split over keys b0, b1, … */
const BEACON_CHUNK = 200;
const PRIVATE_FORMAT = "p1";

export const DEFAULT_ANNOUNCE_INTERVAL_MS = 1_000;
export const DEFAULT_EXPIRE_MS = 3_500;

interface DnsRecord {
  name: string;
  type: string;
  ttl?: number;
}

interface DnsPacket {
  answers: DnsRecord[];
  additionals: DnsRecord[];
}

/** The multicast-dns instance under bonjour-service (untyped there). */
interface MulticastDns {
  on(event: "response", listener: (packet: DnsPacket) => void): void;
  off(event: "response", listener: (packet: DnsPacket) => void): void;
  on(event: "warning" | "error", listener: (err: Error) => void): void;
  respond(records: DnsRecord[], callback?: (err?: Error | null) => void): void;
}

/**
 * bonjour-service keeps its multicast-dns socket private and types its constructor options as a service
 * config, though it hands them to multicast-dns; heartbeats and liveness need both, so this is the one
 * place that reaches past its typings.
 */
function createBonjour(options: { interface?: string; bind?: string }, onError: (err: Error) => void): { bonjour: Bonjour; mdns: MulticastDns } {
  const BonjourWithMdnsOptions = Bonjour as unknown as new (options: object, onError: (err: Error) => void) => Bonjour;
  const bonjour = new BonjourWithMdnsOptions(options, onError);
  return { bonjour, mdns: (bonjour as unknown as { server: { mdns: MulticastDns } }).server.mdns };
}

/** Turns an interface name into its IPv4 address; addresses pass through. */
export function interfaceAddress(wanted: string): string {
  if (net.isIPv4(wanted)) return wanted;
  const ipv4 = os.networkInterfaces()[wanted]?.find((address) => address.family === "IPv4");
  if (!ipv4) throw new Error(`the network interface "${wanted}" does not exist or has no IPv4 address`);
  return ipv4.address;
}

/**
 * LAN discovery over mDNS / DNS-SD (bonjour-service). Each device publishes `_peer-mesh._tcp` with its
 * device id in TXT and its wire port in SRV, re-announces every second so that peers notice a crash
 * within `expireMs`, and sends a goodbye on stop so that peers see it leave at once. The id in an
 * announcement is only a claim; the wire's TLS handshake proves it when a connection is made.
 */
export class MdnsTransport extends EventEmitter<TransportEvents> implements Transport {
  readonly name = "mdns";
  readonly rank = RANK.mdns;
  readonly carriesIp = true;
  private readonly announceIntervalMs: number;
  private readonly expireMs: number;
  private bonjour?: Bonjour;
  private mdns?: MulticastDns;
  private browser?: Browser;
  private service?: Service;
  private announceTimer?: NodeJS.Timeout;
  private expireTimer?: NodeJS.Timeout;
  private onResponse?: (packet: DnsPacket) => void;
  /** The epoch the published service's beacons and names are for (private discovery). */
  private epoch?: number;
  private randomName = "";
  private beaconPeers = "";
  /** The peers each service was last recognised as (private services name nobody in their records). */
  private readonly idsByService = new Map<string, string[]>();

  constructor(private readonly options: MdnsTransportOptions) {
    super();
    this.announceIntervalMs = options.announceIntervalMs ?? DEFAULT_ANNOUNCE_INTERVAL_MS;
    this.expireMs = options.expireMs ?? DEFAULT_EXPIRE_MS;
    if (this.expireMs <= this.announceIntervalMs) throw new Error("expireMs must be longer than announceIntervalMs");
  }

  get instanceName(): string {
    return this.options.beacons ? `pm-${this.randomName}` : `pm-${this.options.deviceId}`;
  }

  async start(): Promise<void> {
    if (this.bonjour) return;
    const iface = this.options.interface ? interfaceAddress(this.options.interface) : undefined;
    // Bound to the wildcard address: a socket bound to the interface's unicast address receives no multicast.
    const { bonjour, mdns } = createBonjour(iface ? { interface: iface, bind: "0.0.0.0" } : {}, (err) => this.emit("warning", err));
    this.bonjour = bonjour;
    this.mdns = mdns;
    mdns.on("warning", (err) => this.emit("warning", err));
    mdns.on("error", (err) => this.emit("warning", err));

    this.browser = bonjour.find({ type: SERVICE_TYPE });
    this.browser.on("up", (service) => this.seen(service));
    this.browser.on("srv-update", (service) => this.seen(service));
    this.browser.on("txt-update", (service) => this.seen(service));
    this.browser.on("down", (service) => {
      const ids = this.idsByService.get(service.fqdn) ?? [];
      this.idsByService.delete(service.fqdn);
      // A private device's next epoch is a new service; its old one saying goodbye does not make it lost.
      const stillHere = new Set([...this.idsByService.values()].flat());
      for (const id of ids) if (id !== this.options.deviceId && !stillHere.has(id)) this.emit("lost", id);
    });
    this.onResponse = (packet) => this.refresh(packet);
    mdns.on("response", this.onResponse);

    this.publish();
    this.announceTimer = setInterval(() => this.announce(), this.announceIntervalMs);
    // Checked more often than peers announce, so that a crash is noticed close to expireMs.
    this.expireTimer = setInterval(() => this.browser?.expire(), Math.max(50, Math.round(this.expireMs / 14)));
  }

  async stop(): Promise<void> {
    const bonjour = this.bonjour;
    if (!bonjour) return;
    this.bonjour = undefined;
    clearInterval(this.announceTimer);
    clearInterval(this.expireTimer);
    this.browser?.stop();
    this.browser?.removeAllListeners();
    if (this.onResponse) this.mdns?.off("response", this.onResponse);
    // The goodbye (records with TTL 0) goes out before the socket closes.
    await new Promise<void>((resolve) => bonjour.unpublishAll(() => resolve()));
    await new Promise<void>((resolve) => bonjour.destroy(() => resolve()));
  }

  connect(address: string): Duplex {
    return dialTcp(address);
  }

  /** Publishes this device's service: for a private device, under this epoch's random names with its beacons. */
  private publish(): void {
    const beacons = this.options.beacons;
    const now = Date.now();
    if (beacons) {
      this.epoch = beacons.epochOf(now);
      this.beaconPeers = beacons.peersVersion();
      this.randomName = randomBytes(8).toString("hex");
    }
    const previous = this.service;
    this.service = this.bonjour!.publish({
      name: this.instanceName,
      type: SERVICE_TYPE,
      port: this.options.port,
      // Hostnames are shared by containers and namespaces; a host name from the id (or a random one) is unique.
      host: `${beacons ? this.randomName : this.options.deviceId.slice(0, 16)}.local`,
      txt: beacons ? beaconTxt(beacons.announce(now)) : { id: this.options.deviceId, ...(this.options.name ? { name: this.options.name } : {}) },
      probe: false, // the instance name holds the device id (or 64 random bits), so no other device can own it
      disableIPv6: true,
    });
    // After the new one: peers see this device under its new name before the old one says goodbye.
    previous?.stop?.();
  }

  private announce(): void {
    const beacons = this.options.beacons;
    // A new epoch, or peers that changed (a pairing) and would not recognise this epoch's beacons.
    if (beacons && (beacons.epochOf(Date.now()) !== this.epoch || beacons.peersVersion() !== this.beaconPeers)) this.publish();
    if (this.service?.published) this.mdns?.respond(this.service.records(), (err) => err && this.emit("warning", err));
  }

  /** Any packet that carries a peer's SRV record keeps that peer alive. */
  private refresh(packet: DnsPacket): void {
    const now = Date.now();
    for (const record of [...packet.answers, ...packet.additionals]) {
      if (record.type !== "SRV" || !record.ttl) continue;
      const service = this.browser?.services.find((known) => known.fqdn === record.name);
      if (!service) continue;
      service.lastSeen = now;
      this.seen(service);
    }
  }

  private seen(service: Service): void {
    const host = service.referer?.address;
    if (!host || !service.port || service.name === this.instanceName) return;
    const ids = this.idsOf(service).filter((id) => id !== this.options.deviceId);
    if (ids.length === 0) return;
    this.idsByService.set(service.fqdn, ids);
    // bonjour-service expires a service ttl seconds after its lastSeen; ours is the crash timeout.
    service.ttl = this.expireMs / 1000;
    service.lastSeen ??= Date.now();
    const name = typeof service.txt?.name === "string" ? service.txt.name : undefined;
    for (const id of ids) this.emit("found", { id, address: joinAddress(host, service.port), name, verified: false });
  }

  /** Who announced: the id a public announcement claims, or the known peers a private one's beacons name. */
  private idsOf(service: Service): string[] {
    const txt = (service.txt ?? {}) as Record<string, unknown>;
    if (typeof txt.id === "string") return isDeviceId(txt.id) ? [txt.id] : [];
    if (txt.v !== PRIVATE_FORMAT || !this.options.beacons) return [];
    const chunks: string[] = [];
    for (let i = 0; typeof txt[`b${i}`] === "string"; i++) chunks.push(txt[`b${i}`] as string);
    return this.options.beacons.recognise(Buffer.from(chunks.join(""), "base64"));
  }
}

/** Beacons as TXT: a format marker and the base64 bytes split over b0, b1, … */
function beaconTxt(announcement: Buffer): Record<string, string> {
  const text = announcement.toString("base64");
  const txt: Record<string, string> = { v: PRIVATE_FORMAT };
  for (let i = 0; i * BEACON_CHUNK < text.length; i++) txt[`b${i}`] = text.slice(i * BEACON_CHUNK, (i + 1) * BEACON_CHUNK);
  return txt;
}
