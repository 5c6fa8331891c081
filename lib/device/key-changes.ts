/** A known peer's address where another key answers: shown to the user, never trusted for the peer. */
export interface KeyChange {
  /** The peer configured (or paired) for the address. */
  peerId: string;
  name?: string;
  address: string;
  /** The device id that answered there instead. */
  answeredBy: string;
  firstSeen: number;
  lastSeen: number;
}

/**
 * The "key changed" warnings of one device, by peer: a different key answering at a peer's known address
 * means a replaced device, a re-installed one that made a new key, or someone else on its address. The
 * wire never trusts it for the peer (ids come from the certificate); this keeps it visible until the
 * expected key answers there again.
 */
export class KeyChanges {
  private readonly byPeer = new Map<string, KeyChange>();

  /** Returns the warning when it is new or names another answering key (worth telling the user again). */
  changed(peerId: string, address: string, answeredBy: string, name?: string, now = Date.now()): KeyChange | undefined {
    const known = this.byPeer.get(peerId);
    if (known && known.answeredBy === answeredBy && known.address === address) {
      known.lastSeen = now;
      return undefined;
    }
    const change: KeyChange = { peerId, name, address, answeredBy, firstSeen: now, lastSeen: now };
    this.byPeer.set(peerId, change);
    return change;
  }

  /** The expected key answers at the address again: returns the warning it ends, if there was one. */
  restored(peerId: string, address: string): KeyChange | undefined {
    const known = this.byPeer.get(peerId);
    if (!known || known.address !== address) return undefined;
    this.byPeer.delete(peerId);
    return known;
  }

  list(): KeyChange[] {
    return [...this.byPeer.values()];
  }
}
