/**
 * TLS 1.3 session tickets from peers this device dialled and verified, so that its next connection to the
 * same peer resumes (no certificates, signatures or certificate checks on either side) instead of a full
 * mutual-TLS handshake: what a sensor that sends every few minutes pays each time its idle connection was
 * closed.
 *
 * On a resumed connection Node's client sees no server certificate, so the pin check cannot be made again.
 * It need not be: only the server that completed the verified handshake the ticket came from can decrypt
 * it (its ticket keys never leave its process) and prove the resumption secret. A ticket is therefore kept
 * only after that handshake proved the peer's id, under that id, with the proof (the key and the
 * certificate's end) that the resumed connection stands on.
 */
export interface TicketProof {
  /** The peer's device id, as its verified certificate proved it. */
  id: string;
  /** The peer's key (DER SPKI) as its verified certificate showed it. */
  spki: Buffer;
  /** When that certificate expires: a ticket does not outlive it. */
  validToMs: number;
}

interface Held extends TicketProof {
  ticket: Buffer;
}

/** How long a listener's tickets let a known peer resume (seconds; Node's default is 300). */
export const SESSION_TICKET_LIFETIME_S = 3_600;

/** Peers remembered at most, least recently dialled forgotten first (a ticket is about 1.5 KB). */
const MAX_TICKETS = 1_000;

export class SessionTickets {
  private readonly held = new Map<string, Held>();

  constructor(private readonly max = MAX_TICKETS) {}

  /** The ticket to offer `peerId` (a device id, or an address for a probe) and what it proves, or nothing (never seen, or its certificate expired). */
  take(peerId: string, now = Date.now()): Held | undefined {
    const held = this.held.get(peerId);
    if (!held) return undefined;
    this.held.delete(peerId);
    if (now >= held.validToMs) return undefined;
    this.held.set(peerId, held); // most recent last
    return held;
  }

  /** Keeps the newest ticket from `peerId`, whose id `proof` verified. */
  remember(peerId: string, ticket: Buffer, proof: TicketProof): void {
    this.held.delete(peerId);
    this.held.set(peerId, { ticket, id: proof.id, spki: proof.spki, validToMs: proof.validToMs });
    if (this.held.size > this.max) this.held.delete(this.held.keys().next().value as string);
  }

  forget(peerId: string): void {
    this.held.delete(peerId);
  }

  get size(): number {
    return this.held.size;
  }
}
