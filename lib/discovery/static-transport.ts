import { EventEmitter } from "node:events";
import net from "node:net";
import type { Duplex } from "node:stream";
import tls from "node:tls";
import { Identity, verifiedPeer } from "../identity";
import { SessionTickets, TICKETS_PER_FULL_HANDSHAKE, type TicketProof } from "../wire/session-tickets";
import { serverNameFor } from "../wire/server-name";
import { isAddress, isOnionHostPort, splitAddress } from "../protocol/address";
import { dialTcp } from "./tcp";
import { type DialEntry, RANK, Transport, TransportEvents } from "./transport";

export type StaticEntry = DialEntry;

export interface StaticTransportOptions {
  identity: Identity;
  entries: StaticEntry[];
  /** Time between two probes of one address. */
  probeIntervalMs?: number;
  /** A handshake that takes longer counts as no answer. */
  probeTimeoutMs?: number;
  /** How probes reach an address (Tor's SOCKS port); plain TCP without it. */
  dial?: (address: string) => Duplex;
}

export const DEFAULT_PROBE_INTERVAL_MS = 5_000;
const DEFAULT_PROBE_TIMEOUT_MS = 3_000;
/** How long a probe's connection stays open after a full handshake for the listener's session tickets. */
const TICKET_WAIT_MS = 1_000;

/**
 * Opens a mutual-TLS handshake to a wire listener and returns the device id its certificate proves.
 * The handshake is the whole probe: no request is sent, so it needs no permission at the peer.
 */
export function probeDevice(identity: Identity, address: string, timeoutMs = DEFAULT_PROBE_TIMEOUT_MS, dial?: (address: string) => Duplex, expectedId?: string, tickets?: SessionTickets): Promise<string> {
  const { host, port } = splitAddress(address);
  // A probe that resumes the session of an earlier verified one is answered by that same listener
  // (see session-tickets.ts): its id is the one verified then, and no certificate crosses the wire.
  const offered = tickets?.take(address);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      session: offered?.ticket,
      ...(dial ? { socket: dial(address) } : { host, port }),
      secureContext: identity.tlsContext(),
      ALPNProtocols: ["h2"],
      rejectUnauthorized: false, // self-signed by design; the id is checked by the caller
      checkServerIdentity: () => undefined,
      // The expected device's server name (a private listener answers only it), else the host name.
      servername: expectedId ? serverNameFor(expectedId) : net.isIP(host) || dial ? undefined : host,
    });
    // A timer rather than socket.setTimeout: a dialled stream (Tor) may sit silent while its circuit is built.
    const timer = setTimeout(() => fail(new Error(`no TLS handshake within ${timeoutMs} ms`)), timeoutMs);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.once("error", fail);
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      const done = (): void => {
        socket.end();
        socket.destroy();
      };
      try {
        let proof: TicketProof;
        if (offered && socket.isSessionReused()) {
          proof = offered;
        } else {
          const certificate = socket.getPeerX509Certificate();
          const verified = verifiedPeer(certificate);
          proof = { id: verified.id, spki: verified.spki, validToMs: Date.parse(certificate?.validTo ?? "") };
        }
        resolve(proof.id);
        if (tickets && !socket.isSessionReused()) {
          // A full handshake's tickets follow it: the probe waits a moment for them.
          const given = setTimeout(done, TICKET_WAIT_MS);
          let count = 0;
          socket.on("session", (ticket: Buffer) => {
            tickets.remember(address, ticket, proof);
            if (++count < TICKETS_PER_FULL_HANDSHAKE) return;
            clearTimeout(given);
            done();
          });
          socket.once("close", () => clearTimeout(given));
          return;
        }
      } catch (err) {
        reject(err);
      }
      done();
    });
  });
}

/**
 * Configured host:port entries, probed periodically: an address whose listener completes a mutual-TLS
 * handshake is a found peer with a verified id; one that stops answering is lost.
 */
export class StaticTransport extends EventEmitter<TransportEvents> implements Transport {
  readonly name = "static";
  readonly rank = RANK.static;
  readonly carriesIp = true;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  /** address → id that answered there at the last probe */
  private readonly answering = new Map<string, string>();
  /** Addresses where a key other than the configured one answered, until the configured one does again. */
  private readonly otherKeyAt = new Set<string>();
  /** Each address's last verified listener: a probe every few seconds resumes rather than redoing the handshake. */
  private readonly tickets = new SessionTickets();
  private timer?: NodeJS.Timeout;
  private running = false;
  private round?: Promise<void>;
  /** Probes of addresses added while running, outside the rounds; stop() waits for them too. */
  private readonly probing = new Set<Promise<void>>();

  private readonly options: StaticTransportOptions;

  constructor(options: StaticTransportOptions) {
    super();
    this.options = { ...options, entries: [...options.entries] };
    for (const entry of this.options.entries) splitAddress(entry.address);
    this.intervalMs = options.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS;
    this.timeoutMs = options.probeTimeoutMs ?? Math.min(DEFAULT_PROBE_TIMEOUT_MS, this.intervalMs);
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    await Promise.all([this.round, ...this.probing]);
    this.answering.clear();
  }

  connect(address: string): Duplex {
    return this.options.dial ? this.options.dial(address) : dialTcp(address);
  }

  /** Adds (or replaces, by id) an address to probe; probed at once when running. */
  /** host:port, never an onion address (looked up in DNS, it would tell the resolver who this device talks to). */
  canDial(address: string): boolean {
    return isAddress(address) && !isOnionHostPort(address);
  }

  add(entry: StaticEntry): void {
    splitAddress(entry.address);
    const entries = this.options.entries;
    const at = entries.findIndex((existing) => existing.expectedId === entry.expectedId);
    if (at >= 0) {
      const [replaced] = entries.splice(at, 1, entry);
      // The old address is no longer probed: what answered there must not stay "found" for good.
      const previous = replaced.address !== entry.address ? this.answering.get(replaced.address) : undefined;
      if (previous) {
        this.answering.delete(replaced.address);
        if (!this.stillAnsweringElsewhere(previous)) this.emit("lost", previous);
      }
    } else {
      entries.push(entry);
    }
    if (!this.running) return;
    const probing: Promise<void> = this.probe(entry).finally(() => this.probing.delete(probing));
    this.probing.add(probing);
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => {
      this.round = this.probeAll().finally(() => {
        if (this.running) this.schedule(this.intervalMs);
      });
    }, delayMs);
  }

  private async probeAll(): Promise<void> {
    await Promise.all(this.options.entries.map((entry) => this.probe(entry)));
  }

  private async probe(entry: StaticEntry): Promise<void> {
    let id: string | undefined;
    try {
      id = await probeDevice(this.options.identity, entry.address, this.timeoutMs, this.options.dial, entry.expectedId, this.tickets);
    } catch {
      id = undefined;
    }
    if (!this.running) return;
    const previous = this.answering.get(entry.address);
    if (previous && previous !== id) {
      this.answering.delete(entry.address);
      if (!this.stillAnsweringElsewhere(previous)) this.emit("lost", previous);
    }
    if (!id) return;
    if (id === this.options.identity.deviceId) return;
    if (entry.expectedId && entry.expectedId !== id && previous !== id) {
      this.emit("warning", new Error(`${entry.address} answers as ${id}, not as the configured ${entry.expectedId}`));
      this.emit("key-changed", { expectedId: entry.expectedId, address: entry.address, answeredBy: id });
      this.otherKeyAt.add(entry.address);
    }
    if (entry.expectedId === id && this.otherKeyAt.delete(entry.address)) this.emit("key-changed", { expectedId: id, address: entry.address });
    this.answering.set(entry.address, id);
    this.emit("found", { id, address: entry.address, name: entry.expectedId === id ? entry.name : undefined, verified: true });
  }

  private stillAnsweringElsewhere(id: string): boolean {
    return [...this.answering.values()].includes(id);
  }
}
