import { EventEmitter } from "node:events";
import { promises as fs } from "node:fs";
import path from "node:path";
import type { Duplex } from "node:stream";
import { SocksClient } from "socks";
import { DescriptorUploads } from "./descriptor-uploads";
import { DeferredDuplex } from "../discovery/deferred-duplex";
import { StaticTransport, type StaticEntry } from "../discovery/static-transport";
import { RANK, type Sighting, type Transport, type TransportEvents } from "../discovery/transport";
import type { Identity } from "../identity";
import { type BootstrapPhase, parseBootstrapPhase, TorControl, TorControlError } from "./control";
import { launchTor, type LaunchedTor, stopLaunchedTor } from "./launch";
import { StalledRendezvous } from "./stalled-rendezvous";
import { randomClientKey } from "./client-auth";
import { isOnionAddress, isOnionHostPort, ONION_PORT, splitAddress } from "../protocol/address";

export interface TorTransportOptions {
  identity: Identity;
  /** host:port of this device's wire listener: the onion service forwards to it. */
  target: string;
  /** Start a tor of this device's own (the default), or attach to a running tor through its control port. */
  launch?: { binary?: string; dataDir: string; torrc?: string[] };
  attach?: { controlAddress: string; password?: string };
  /** How long other directories may take once one took a new descriptor (default 10 s; see UPLOADS_SETTLE_MS). */
  uploadsSettleMs?: number;
  /** Where the onion service's key is kept, so the onion address survives restarts; without it, a new address each start. */
  keyFile?: string;
  /** Onion addresses of peers to probe (and report as found when their handshake proves their id). */
  entries?: StaticEntry[];
  probeIntervalMs?: number;
  probeTimeoutMs?: number;
  /** How long a connection may wait for tor to finish bootstrapping and build a circuit. */
  connectTimeoutMs?: number;
  /** First wait before reconnecting to a tor that went away; doubles up to a minute. */
  retryMs?: number;
  /** Client authorisation: who may reach this device's onion service, and the keys for peers' services. */
  clientAuth?: OnionClientAuth;
}

/**
 * v3 client authorisation, both ways. The keys come from the device (pair secrets, pairing codes); the
 * transport publishes and registers them with tor.
 */
export interface OnionClientAuth {
  /**
   * Public keys (base32) of the clients this device's onion service admits, most wanted first; undefined
   * when the service is open to any client. Asked every second: a change publishes the service anew.
   */
  authorized(): string[] | undefined;
  /** Private keys (base64) that may open the onion service of `peerId`, best first. */
  credentials(peerId: string): string[];
}

/**
 * Tor puts the admitted clients in the service's descriptor, padded to sixteens, and a descriptor of 384
 * failed to upload on the test network (50 kB limit): 352 is the most that publishes.
 */
export const MAX_ONION_CLIENTS = 352;
/** How often the admitted clients are compared with those published. */
const CLIENTS_CHECK_MS = 1_000;
/**
 * After the first directory took a new descriptor, how long the others may take before the service
 * counts as published anyway. All twelve uploads of the test network take under half a second.
 */
const UPLOADS_SETTLE_MS = 10_000;
/** A pairing code's key opens the service for this long after the guest's device was given it. */
const PAIRING_CREDENTIAL_MS = 30 * 60_000;

/** What the identity's status shows: tor's bootstrap progress and this device's onion address. */
export interface TorStatus {
  state: "starting" | "bootstrapping" | "ready" | "failed" | "stopped";
  /** 0–100, tor's own bootstrap percentage. */
  progress: number;
  summary: string;
  /** "<56 characters>.onion:443" once the onion service is added. */
  onion?: string;
  /** Every directory tor sent the service's descriptor to took it (or 10 s passed since the first did): peers can reach it now. */
  published: boolean;
  /** With client authorisation: how many peers the published service admits (0: nobody yet). */
  admitted?: number;
  error?: string;
}


const DEFAULT_PROBE_INTERVAL_MS = 60_000;
const DEFAULT_PROBE_TIMEOUT_MS = 60_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 60_000;
const DEFAULT_RETRY_MS = 5_000;
const MAX_RETRY_MS = 60_000;

/**
 * Tor: this device's wire listener as an onion service, and peers' onion addresses reached through tor's
 * SOCKS port. The same mutual TLS and HTTP/2 run inside, so identity and ACL are those of every other
 * transport. Peers are "found" at onion addresses configured, paired or published in the mesh, once a
 * handshake through Tor proves who answers there. A tor that exits or drops its control connection is
 * reconnected, with a growing pause.
 */
export class TorTransport extends EventEmitter<TransportEvents> implements Transport {
  readonly name = "tor";
  readonly rank = RANK.tor;
  readonly carriesIp = false;
  unavailable?: string;
  private current: TorStatus = { state: "stopped", progress: 0, summary: "", published: false };
  private tor?: { control: TorControl; socksAddress: string; launched?: LaunchedTor; serviceId?: string; clients?: string; registered: Map<string, string> };
  /** The service's private key ("ED25519-V3:…"), kept so that publishing anew keeps the onion address. */
  private serviceKey?: string;
  private clientsTimer?: NodeJS.Timeout;
  /** The count of admitted clients last warned about (beyond what a service holds). */
  private omitted?: number;
  private publishing?: Promise<void>;
  /** The uploads of the descriptor last added: "published" waits for every directory (DescriptorUploads). */
  private uploads?: DescriptorUploads;
  /** Counts the service published when some upload is never answered (tor does not say when its connection dies). */
  private uploadsSettle?: NodeJS.Timeout;
  /** Which peer answers at an onion service (from the entries probed and pairing codes). */
  private readonly peerAtService = new Map<string, string>();
  /** Keys pairing codes gave for a service, and until when they are worth trying. */
  private readonly pairingCredentials = new Map<string, Array<{ key: string; until: number }>>();
  /** The key that last opened a service: tried first next time. */
  private readonly workedFor = new Map<string, string>();
  private readonly prober: StaticTransport;
  private readonly found = new Set<string>();
  private running = false;
  private retryTimer?: NodeJS.Timeout;
  private retryMs: number;
  private connecting?: Promise<void>;
  private readyWaiters: Array<() => void> = [];
  private readonly statusEvents = new EventEmitter<{ status: [status: TorStatus] }>();
  private readonly stalled = new StalledRendezvous(() => this.tor?.control, {
    onClosed: (service) => this.emit("warning", new Error(`Tor: the rendezvous with ${service}.onion waited in vain (its tor went away after taking the introduction); trying afresh`)),
  });

  constructor(private readonly options: TorTransportOptions) {
    super();
    if (!options.launch === !options.attach) throw new Error("Tor needs either a tor to launch or a control port to attach to");
    for (const entry of options.entries ?? []) checkOnion(entry.address);
    this.retryMs = options.retryMs ?? DEFAULT_RETRY_MS;
    this.prober = new StaticTransport({
      identity: options.identity,
      entries: options.entries ?? [],
      probeIntervalMs: options.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS,
      probeTimeoutMs: options.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS,
      dial: (address) => this.connect(address),
    });
    this.prober.on("found", (sighting: Sighting) => {
      this.found.add(sighting.id);
      this.emit("found", sighting);
    });
    this.prober.on("lost", (id) => {
      this.found.delete(id);
      this.emit("lost", id);
    });
    this.prober.on("warning", (err) => this.emit("warning", err));
  }

  get status(): TorStatus {
    return { ...this.current };
  }

  /** Calls `listener` with each change of the status (bootstrap progress, onion address, failure); returns the unsubscribe. */
  onStatus(listener: (status: TorStatus) => void): () => void {
    this.statusEvents.on("status", listener);
    return () => this.statusEvents.off("status", listener);
  }

  /** How long a connection through Tor may take to open (bootstrap wait and circuit included). */
  get connectTimeoutMs(): number {
    return this.options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  }

  /** This device's onion address ("….onion:443") once the service is added. */
  get onionAddress(): string | undefined {
    return this.current.onion;
  }

  /** Resolves at once: tor may take a minute to bootstrap, and the device serves its other transports meanwhile. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.update({ state: "starting", progress: 0, summary: "starting tor", published: false, error: undefined });
    this.connecting = this.open();
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    clearTimeout(this.retryTimer);
    this.stalled.stop();
    clearInterval(this.clientsTimer);
    this.clientsTimer = undefined;
    this.followUploads(undefined);
    await this.connecting;
    await this.publishing;
    await this.prober.stop();
    this.found.clear();
    await this.close();
    this.update({ state: "stopped", published: false });
    for (const wake of this.readyWaiters.splice(0)) wake();
  }

  /** Onion addresses, and only those. */
  canDial(address: string): boolean {
    return isOnionHostPort(address);
  }

  /** Adds (or replaces, by id) a peer's onion address to probe. */
  add(entry: StaticEntry): void {
    checkOnion(entry.address);
    if (entry.expectedId) this.peerAtService.set(serviceIdOf(entry.address), entry.expectedId);
    this.prober.add(entry);
  }

  /**
   * Who answers at an onion address, and the client key its pairing code gave: used (before the keys
   * the two devices share) for the connections that pair them.
   */
  expect(address: string, peerId: string, pairingKey?: string): void {
    const service = serviceIdOf(checkOnion(address));
    this.peerAtService.set(service, peerId);
    if (!pairingKey) return;
    const now = Date.now();
    const held = (this.pairingCredentials.get(service) ?? []).filter((entry) => entry.until > now && entry.key !== pairingKey);
    this.pairingCredentials.set(service, [{ key: pairingKey, until: now + PAIRING_CREDENTIAL_MS }, ...held]);
  }

  /** A byte stream to `address` ("….onion:port") through tor's SOCKS port, once tor has bootstrapped. */
  connect(address: string): Duplex {
    return new DeferredDuplex(this.openStream(address));
  }

  private async openStream(address: string): Promise<Duplex> {
    const { host, port } = splitAddress(checkOnion(address));
    const timeoutMs = this.connectTimeoutMs;
    const deadline = Date.now() + timeoutMs;
    await this.whenReady(timeoutMs);
    const tor = this.tor;
    if (!tor) throw new TorControlError("tor stopped");
    const proxy = splitAddress(tor.socksAddress);
    const service = serviceIdOf(host);
    const dialled = this.stalled.dialling(service);
    const credentials = this.credentialsFor(service);
    try {
      // Each key the device has for the service in turn: a wrong one fails at once (the descriptor
      // does not decrypt), and a mismatch (one side knows the other's key, the other not yet) passes.
      for (let at = 0; ; at++) {
        const credential = credentials[at];
        if (credential !== undefined && tor.registered.get(service) !== credential) {
          await tor.control.command(`ONION_CLIENT_AUTH_ADD ${service} x25519:${credential}`);
          tor.registered.set(service, credential);
        }
        try {
          const { socket } = await SocksClient.createConnection({
            proxy: { host: proxy.host, port: proxy.port, type: 5 },
            command: "connect",
            destination: { host, port }, // the name goes to tor unresolved: .onion names never reach DNS
            timeout: Math.max(1_000, deadline - Date.now()),
          });
          if (credential !== undefined) this.workedFor.set(service, credential);
          return socket;
        } catch (err) {
          if (at + 1 >= credentials.length || Date.now() >= deadline - 1_000) throw err;
        }
      }
    } catch (err) {
      void this.stalled.failed(service).catch(() => undefined);
      throw new TorControlError(`Tor could not reach ${host}:${port}: ${(err as Error).message}`);
    } finally {
      dialled();
    }
  }

  /** The client keys to try for `service`: the one that worked last, a pairing code's, then the pair's. */
  private credentialsFor(service: string): string[] {
    const now = Date.now();
    const pairing = (this.pairingCredentials.get(service) ?? []).filter((entry) => entry.until > now).map((entry) => entry.key);
    const peerId = this.peerAtService.get(service);
    const shared = peerId && this.options.clientAuth ? this.options.clientAuth.credentials(peerId) : [];
    const worked = this.workedFor.get(service);
    const all = [...pairing, ...shared];
    return [...new Set([...(worked && all.includes(worked) ? [worked] : []), ...all])];
  }

  /** Waits until tor has bootstrapped; fails with its progress if it does not in time. */
  private async whenReady(timeoutMs: number): Promise<void> {
    if (!this.running) throw new TorControlError("the Tor transport is stopped");
    if (this.current.state === "ready") return;
    let wake!: () => void;
    const ready = new Promise<void>((resolve) => (wake = resolve));
    this.readyWaiters.push(wake);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    await Promise.race([ready, timeout]);
    clearTimeout(timer);
    this.readyWaiters = this.readyWaiters.filter((waiter) => waiter !== wake);
    if (this.status.state !== "ready") {
      const where = this.current.error ?? `${this.current.progress} %: ${this.current.summary}`;
      throw new TorControlError(`Tor is not ready (${where})`);
    }
  }

  private async open(): Promise<void> {
    try {
      const launch = this.options.launch;
      if (launch) {
        const launched = await launchTor(launch);
        this.tor = { control: launched.control, socksAddress: launched.socksAddress, launched, registered: new Map() };
      } else {
        const attach = this.options.attach!;
        const control = await TorControl.connect(attach.controlAddress, { password: attach.password });
        const socks = await control.socksAddress();
        if (!socks) {
          control.close();
          throw new TorControlError(`the tor at ${attach.controlAddress} has no SOCKS port (SocksPort 0)`);
        }
        this.tor = { control, socksAddress: socks, registered: new Map() };
      }
      if (!this.running) return this.close();
      const control = this.tor.control;
      control.on("event", (line) => this.onEvent(line));
      control.once("close", () => this.onLost());
      await control.command("SETEVENTS STATUS_CLIENT HS_DESC");
      const phase = parseBootstrapPhase(await control.getInfo("status/bootstrap-phase"));
      if (phase) this.onBootstrap(phase);
      await this.addOnion(control);
      if (this.options.clientAuth?.authorized() !== undefined && !this.clientsTimer) {
        this.clientsTimer = setInterval(() => this.publishIfClientsChanged(), CLIENTS_CHECK_MS);
        this.clientsTimer.unref();
      }
      this.retryMs = this.options.retryMs ?? DEFAULT_RETRY_MS;
    } catch (err) {
      const message = (err as Error).message;
      if (/tor is not installed/.test(message)) {
        this.unavailable = message;
        this.update({ state: "failed", error: message });
        this.emit("warning", new Error(`Tor is unavailable: ${message}`));
        return;
      }
      await this.close();
      this.update({ state: "failed", error: message });
      this.emit("warning", new Error(`Tor: ${message}`));
      this.scheduleRetry();
    }
  }

  /**
   * Publishes the wire listener as an onion service tied to this control connection (it goes when the
   * connection does); with client authorisation, for the admitted clients only.
   */
  private async addOnion(control: TorControl): Promise<void> {
    const keyFile = this.options.keyFile;
    const stored = this.serviceKey ?? (keyFile ? (await fs.readFile(keyFile, "utf8").catch(() => "")).trim() : "");
    const key = stored || "NEW:ED25519-V3";
    const admitted = this.admittedClients();
    const flags = admitted ? " Flags=V3Auth" : keyFile ? "" : " Flags=DiscardPK";
    // With nobody admitted yet, a random key that nobody holds: a private device with no peers is reachable by no one.
    const clients = (admitted?.length ? admitted : admitted ? [randomClientKey().publicKey] : []).map((client) => ` ClientAuthV3=${client}`).join("");
    const reply = await control.command(`ADD_ONION ${key}${flags} Port=${ONION_PORT},${this.options.target}${clients}`);
    const serviceId = reply.lines.find((line) => line.startsWith("ServiceID="))?.slice("ServiceID=".length);
    const privateKey = reply.lines.find((line) => line.startsWith("PrivateKey="))?.slice("PrivateKey=".length);
    if (!serviceId) throw new TorControlError("tor added no onion service");
    if (keyFile && privateKey && !stored) {
      await fs.mkdir(path.dirname(keyFile), { recursive: true, mode: 0o700 });
      await fs.writeFile(keyFile, `${privateKey}\n`, { mode: 0o600 });
    }
    // Publishing anew (other clients) must keep the address: the key stays in memory even without a file.
    if (admitted) this.serviceKey = stored || privateKey;
    if (this.tor) {
      this.tor.serviceId = serviceId;
      this.tor.clients = admitted?.join();
      this.followUploads(new DescriptorUploads(serviceId));
    }
    this.update({ onion: `${serviceId}.onion:${ONION_PORT}`, ...(admitted ? { admitted: admitted.length } : {}) });
  }

  /**
   * The clients to admit (undefined: any). Tor publishes nothing beyond MAX_ONION_CLIENTS, so the rest
   * are left out (with a warning): they reach this device on its other transports only.
   */
  private admittedClients(): string[] | undefined {
    const wanted = this.options.clientAuth?.authorized();
    if (!wanted) return undefined;
    const unique = [...new Set(wanted)];
    if (unique.length > MAX_ONION_CLIENTS && this.omitted !== unique.length) {
      this.omitted = unique.length;
      this.emit("warning", new Error(`Tor: ${unique.length} peers may reach this device, and an onion service admits ${MAX_ONION_CLIENTS} at most; the last ${unique.length - MAX_ONION_CLIENTS} reach it on its other transports only`));
    }
    return unique.slice(0, MAX_ONION_CLIENTS);
  }

  /** The admitted clients changed (a pairing, a key learnt, a group edited): the service is published anew. */
  private publishIfClientsChanged(): void {
    const tor = this.tor;
    if (!tor || this.publishing || !this.running) return;
    // (No service: publishing it anew failed last time, and is tried again.)
    if (tor.serviceId && this.admittedClients()?.join() === tor.clients) return;
    // Until tor has uploaded the new descriptor, peers newly admitted cannot open it yet.
    this.followUploads(undefined);
    this.update({ published: false });
    this.publishing = (async () => {
      if (tor.serviceId) await tor.control.command(`DEL_ONION ${tor.serviceId}`);
      tor.serviceId = undefined;
      if (this.tor === tor) await this.addOnion(tor.control);
    })()
      .catch((err: Error) => {
        this.emit("warning", new Error(`Tor: publishing the onion service for its new clients failed: ${err.message}`));
      })
      .finally(() => (this.publishing = undefined));
  }

  private onEvent(line: string): void {
    if (line.startsWith("STATUS_CLIENT ")) {
      const phase = parseBootstrapPhase(line);
      if (phase && /BOOTSTRAP/.test(line)) this.onBootstrap(phase);
      return;
    }
    const uploads = this.uploads;
    if (!uploads || this.current.published) return;
    if (uploads.onEvent(line)) return this.published(uploads);
    if (uploads.anyUploaded) this.uploadsSettle ??= setTimeout(() => this.published(uploads), this.options.uploadsSettleMs ?? UPLOADS_SETTLE_MS).unref();
  }

  /** Follows the uploads of a descriptor just added (undefined: none, the service is gone). */
  private followUploads(uploads: DescriptorUploads | undefined): void {
    clearTimeout(this.uploadsSettle);
    this.uploadsSettle = undefined;
    this.uploads = uploads;
  }

  private published(uploads: DescriptorUploads): void {
    if (uploads !== this.uploads) return;
    clearTimeout(this.uploadsSettle);
    this.uploadsSettle = undefined;
    this.update({ published: true });
  }

  private onBootstrap(phase: BootstrapPhase): void {
    const ready = phase.progress >= 100;
    this.update({ state: ready ? "ready" : "bootstrapping", progress: phase.progress, summary: phase.summary, error: phase.warning });
    if (!ready) return;
    for (const wake of this.readyWaiters.splice(0)) wake();
    void this.prober.start();
  }

  /** Tor went away (exited, or its control connection dropped): peers through it are lost until it is back. */
  private onLost(): void {
    if (!this.running) return;
    void this.prober.stop().then(() => {
      for (const id of this.found) this.emit("lost", id);
      this.found.clear();
    });
    const launched = this.tor?.launched;
    this.tor = undefined;
    this.followUploads(undefined);
    if (launched) void stopLaunchedTor(launched);
    this.update({ state: "failed", published: false, error: "the connection to tor was lost" });
    this.emit("warning", new Error("Tor: the connection to tor was lost; reconnecting"));
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (!this.running) return;
    const wait = this.retryMs;
    this.retryMs = Math.min(MAX_RETRY_MS, this.retryMs * 2);
    this.retryTimer = setTimeout(() => {
      if (this.running) this.connecting = this.open();
    }, wait);
    this.retryTimer.unref();
  }

  private async close(): Promise<void> {
    const tor = this.tor;
    this.tor = undefined;
    this.followUploads(undefined);
    if (!tor) return;
    tor.control.removeAllListeners("close");
    if (tor.launched) return stopLaunchedTor(tor.launched);
    // An attached tor keeps running: only this device's onion service goes.
    if (tor.serviceId) await tor.control.command(`DEL_ONION ${tor.serviceId}`).catch(() => undefined);
    tor.control.close();
  }

  private update(change: Partial<TorStatus>): void {
    const next = { ...this.current, ...change };
    if (JSON.stringify(next) === JSON.stringify(this.current)) return;
    this.current = next;
    this.statusEvents.emit("status", this.status);
  }
}

/** The 56 characters before ".onion" (what tor's control commands name a service by). */
function serviceIdOf(addressOrHost: string): string {
  const host = addressOrHost.includes(":") ? splitAddress(addressOrHost).host : addressOrHost;
  return host.toLowerCase().slice(0, -".onion".length);
}

function checkOnion(address: string): string {
  const { host } = splitAddress(address);
  if (!isOnionAddress(host)) throw new Error(`"${address}" is not an onion address (<56 letters and digits>.onion:port)`);
  return address;
}
