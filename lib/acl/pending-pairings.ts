import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { shortId } from "../identity/device-id";
import { WireError } from "../protocol/errors";
import { claimedName, shortAuthenticationString } from "./pairing";

export interface PeerRef {
  id: string;
  name?: string;
}

/** A pairing waiting for this device's user (or flow) to confirm it. */
export interface PendingPairing {
  requestId: string;
  /** incoming: the peer asked us; outgoing: we asked the peer. */
  direction: "incoming" | "outgoing";
  peer: PeerRef;
  /** The six digits both users compare. */
  sas: string;
  at: number;
  /** For outgoing pairings: where the peer's code said it listens (the address that answered). */
  address?: string;
  /** For outgoing pairings: every address of the peer's code this device can use, best first. */
  addresses?: string[];
  /** For incoming pairings: the request arrived inside a pairing window (a physical action), so it may be accepted without the digits. */
  windowed?: boolean;
  /** For incoming pairings: the address it came from (requests waiting are limited per source). */
  source?: string;
}

/** What the wire server hands over for a pairing request. */
export interface PairingRequest {
  from: string;
  name?: string;
  keyingMaterial: Buffer;
  address?: string;
}

const MAX_PENDING_PAIRINGS = 16;
/** Pairing requests waiting from one address: one stranger cannot take every slot. */
const MAX_PENDING_PAIRINGS_PER_SOURCE = 2;
const PAIRING_TTL_MS = 10 * 60_000;
/** A pairing window opened by a physical action lasts this long by default, and at most 10 minutes. */
export const DEFAULT_PAIRING_WINDOW_MS = 60_000;
const MAX_PAIRING_WINDOW_MS = 10 * 60_000;

/**
 * The pairings waiting for a user's confirmation, in both directions: bounded (16 in all, 2 per source
 * address), expiring after 10 minutes, and the pairing window a physical action opens for one request.
 * Confirming checks the six digits; what a confirmed pairing grants is the device's business.
 */
export class PendingPairings extends EventEmitter<{ pairing: [pending: PendingPairing] }> {
  private readonly pending = new Map<string, PendingPairing>();
  private window?: { until: number };

  constructor(
    private readonly selfId: string,
    /** The name this device already knows a peer by (its configured peers), if any. */
    private readonly knownName: (id: string) => string | undefined,
  ) {
    super();
  }

  /** A request that came in over the wire; returns its request id. */
  acceptIncoming(request: PairingRequest): string {
    this.expire();
    // A device asking again replaces its own earlier request rather than taking another slot.
    for (const [id, pending] of this.pending) if (pending.direction === "incoming" && pending.peer.id === request.from) this.pending.delete(id);
    const incoming = [...this.pending.values()].filter((pending) => pending.direction === "incoming");
    if (request.address !== undefined && incoming.filter((pending) => pending.source === request.address).length >= MAX_PENDING_PAIRINGS_PER_SOURCE) {
      throw new WireError("REFUSED", `${MAX_PENDING_PAIRINGS_PER_SOURCE} pairing requests from this address are already waiting for confirmation`);
    }
    if (incoming.length >= MAX_PENDING_PAIRINGS) throw new WireError("REFUSED", "too many pairing requests are waiting for confirmation");
    const windowed = !!this.window && this.window.until >= Date.now();
    // One request per window: the physical action consents to one device, not to whoever comes next.
    if (windowed) this.window = undefined;
    const pending: PendingPairing = {
      requestId: randomUUID(),
      direction: "incoming",
      peer: { id: request.from, name: this.knownName(request.from) ?? claimedName(request.name, request.from) },
      sas: shortAuthenticationString(request.keyingMaterial, this.selfId, request.from),
      at: Date.now(),
      source: request.address,
      ...(windowed ? { windowed } : {}),
    };
    this.remember(pending);
    return pending.requestId;
  }

  /** A request this device made, answered by the peer: waits for this side's confirmation too. */
  addOutgoing(peer: PeerRef, keyingMaterial: Buffer, addresses: string[]): PendingPairing {
    const pending: PendingPairing = {
      requestId: randomUUID(),
      direction: "outgoing",
      peer,
      sas: shortAuthenticationString(keyingMaterial, this.selfId, peer.id),
      at: Date.now(),
      address: addresses[0],
      addresses,
    };
    this.remember(pending);
    return pending;
  }

  /**
   * Opens a pairing window after a physical action on a headless device: the next request arriving within
   * `ms` may be accepted without typing the digits. One request per window; one that arrived before it
   * stays digits-only.
   */
  openWindow(ms = DEFAULT_PAIRING_WINDOW_MS): { until: number } {
    if (!Number.isFinite(ms) || ms <= 0 || ms > MAX_PAIRING_WINDOW_MS) throw new WireError("BAD_REQUEST", `a pairing window lasts more than 0 and at most ${MAX_PAIRING_WINDOW_MS / 1000} s`);
    this.window = { until: Date.now() + ms };
    return { ...this.window };
  }

  list(): PendingPairing[] {
    this.expire();
    return [...this.pending.values()];
  }

  /**
   * Takes a pairing out to be confirmed. `sas`, when given, must be the six digits this device derived
   * (the user typed what the other device shows); a mismatch is refused and the request dropped, since it
   * means another device sat in the middle. Without digits only a request that came in a window passes.
   * The caller puts it back with `release` if granting it fails.
   */
  take(requestId: string, sas: string | undefined): PendingPairing {
    this.expire();
    const pending = this.pending.get(requestId);
    if (!pending) throw new WireError("NOT_FOUND", "no such pairing request (expired, confirmed or refused)");
    if (sas !== undefined && sas.trim() !== pending.sas) {
      this.pending.delete(requestId);
      throw new WireError("PAIRING_MISMATCH", `the code ${sas.trim()} does not match this device's ${pending.sas}: pairing with ${shortId(pending.peer.id)} refused`);
    }
    if (sas === undefined && pending.direction === "incoming" && !pending.windowed) {
      throw new WireError("REFUSED", `accepting ${shortId(pending.peer.id)} without the six digits needs a pairing window opened (pairing/open, a physical action) before its request arrived`);
    }
    return pending;
  }

  /** The pairing is settled (confirmed): it no longer waits. */
  settle(requestId: string): void {
    this.pending.delete(requestId);
  }

  reject(requestId: string): boolean {
    return this.pending.delete(requestId);
  }

  private remember(pending: PendingPairing): void {
    this.pending.set(pending.requestId, pending);
    this.emit("pairing", pending);
  }

  private expire(): void {
    const oldest = Date.now() - PAIRING_TTL_MS;
    for (const [id, pending] of this.pending) if (pending.at < oldest) this.pending.delete(id);
  }
}
