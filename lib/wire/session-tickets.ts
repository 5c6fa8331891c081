/**
 * TLS 1.3 session tickets from peers this device dialled and verified, so that its next connection to the
 * same peer resumes (no certificates or signatures on the wire, no certificate check at the dialling end)
 * instead of a full mutual-TLS handshake: what a sensor that sends every few minutes pays each time its idle
 * connection was closed. The listener still checks the dialler's certificate, which the ticket carries.
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
  /** Unused tickets, oldest first. */
  tickets: Buffer[];
}

/** How long a listener's tickets let a known peer resume (seconds; Node's default is 300). */
export const SESSION_TICKET_LIFETIME_S = 3_600;

/** Peers remembered at most, the one whose ticket is oldest forgotten first (a ticket is about 1.5 KB). */
const MAX_PEERS = 1_000;
/**
 * Tickets a Node listener sends after a full handshake (none after a resumed one), and so the tickets kept
 * per peer: each is offered once, two resumed connections for every full one.
 */
export const TICKETS_PER_FULL_HANDSHAKE = 2;

export class SessionTickets {
  private readonly held = new Map<string, Held>();

  constructor(private readonly maxPeers = MAX_PEERS) {}

  /**
   * A ticket to offer `peerId` (a device id, or an address for a probe) and what it proves, or nothing
   * (none left, or the certificate it stands for expired). Each ticket is offered once: it travels in the
   * clear in the ClientHello, so one offered again would let an observer link this device's connections,
   * across a BLE address rotation too (RFC 8446, appendix C.4).
   */
  take(peerId: string, now = Date.now()): (TicketProof & { ticket: Buffer }) | undefined {
    const held = this.held.get(peerId);
    if (!held) return undefined;
    const ticket = held.tickets.shift();
    if (held.tickets.length === 0 || now >= held.validToMs) this.held.delete(peerId);
    if (!ticket || now >= held.validToMs) return undefined;
    return { ticket, id: held.id, spki: held.spki, validToMs: held.validToMs };
  }

  /** Keeps a ticket from `peerId`, whose id `proof` verified; one from another key replaces what was held. */
  remember(peerId: string, ticket: Buffer, proof: TicketProof): void {
    const held = this.held.get(peerId);
    this.held.delete(peerId); // most recent last
    const tickets = held && held.id === proof.id ? [...held.tickets, ticket].slice(-TICKETS_PER_FULL_HANDSHAKE) : [ticket];
    this.held.set(peerId, { tickets, id: proof.id, spki: proof.spki, validToMs: proof.validToMs });
    if (this.held.size > this.maxPeers) this.held.delete(this.held.keys().next().value as string);
  }

  forget(peerId: string): void {
    this.held.delete(peerId);
  }

  /** Peers with a ticket held. */
  get size(): number {
    return this.held.size;
  }
}
