import type { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";

/** What one transport saw of one device. */
export interface Sighting {
  /** The device id the peer claims (mDNS TXT) or proved (a TLS handshake: `verified`). */
  id: string;
  /** Where the transport reaches it; for IP transports "host:port" with IPv6 hosts in brackets. */
  address: string;
  name?: string;
  /** True when the id comes from the peer's certificate rather than from an unauthenticated announcement. */
  verified: boolean;
}

/** A peer's address for a transport to probe, with the id configured for it. */
export interface DialEntry {
  address: string;
  /** The id configured for this address; a different key answering there is reported as a warning. */
  expectedId?: string;
  name?: string;
}

export interface TransportEvents {
  /** A device is in range, or is still in range; repeated sightings refresh it. */
  found: [sighting: Sighting];
  lost: [id: string];
  /** Something the user should know that does not stop the transport (an unreachable interface, a bad packet). */
  warning: [err: Error];
  /** A peer opened a byte stream to this device's wire (transports whose connections do not reach the TCP listener: BLE). */
  connection: [socket: Duplex];
  /**
   * A different key answered at an address configured for `expectedId` (`answeredBy` undefined: the
   * expected key answers there again). Never trusted for it: the device reports it as "key changed".
   */
  "key-changed": [change: { expectedId: string; address: string; answeredBy?: string }];
}

/**
 * One way of finding and reaching peers (mDNS, static addresses, BLE, Tor, or a package's own). Every
 * transport passes the shared compliance suite in test/transport-compliance.ts. A device hands each
 * address it knows to the first transport whose canDial() takes it, and dials through connect() a peer
 * found by a transport that does not carry IP.
 */
export interface Transport extends EventEmitter<TransportEvents> {
  /** Short lowercase name shown to users: "mdns", "static", "ble". */
  readonly name: string;
  /** Lower is preferred when a device is reachable several ways. */
  readonly rank: number;
  /** False for transports whose addresses are not host:port (BLE); the wire then dials through connect(). */
  readonly carriesIp: boolean;
  /** Idempotent; resolves once the transport announces and listens. */
  start(): Promise<void>;
  /** Idempotent; tells peers it is leaving where the transport can (an mDNS goodbye). No events after it resolves. */
  stop(): Promise<void>;
  /** Why the transport cannot run here (BLE with no adapter), once start() found out; it then finds nobody. */
  readonly unavailable?: string;
  /** A byte stream to the wire listener at an address this transport reported (or takes, see canDial). */
  connect(address: string): Duplex;
  /**
   * Which addresses this transport dials and probes (libp2p's dialFilter): host:port for static, onion
   * addresses for Tor. Transports that reach only the devices they find (mDNS, BLE) leave it out.
   */
  canDial?(address: string): boolean;
  /** Probes an address canDial() took, from now on, and reports the device that answers there. */
  add?(entry: DialEntry): void;
  /** How long opening a connection may take (Tor builds circuits); the wire's own timeout without it. */
  readonly connectTimeoutMs?: number;
}

/** Transport ranks: the order in which addresses are preferred. */
export const RANK = { mdns: 10, static: 20, ble: 40, tor: 50 } as const;
