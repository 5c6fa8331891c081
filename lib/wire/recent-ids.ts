/**
 * A bounded set remembering the most recent ids of each sender, so repeats can be dropped. O(1) per id:
 * one ring across all senders evicts the oldest. Ids are kept per sender rather than as one joined
 * "sender/id" key: joining made a 100-character string per message to flatten and hash, which took
 * about a third of the set's time (the set was 7 % of the library's message path in a CPU profile).
 */
export class RecentIds {
  private readonly bySender = new Map<string, Set<string>>();
  private readonly ringSenders: Array<string | undefined>;
  private readonly ringIds: Array<string | undefined>;
  private next = 0;

  constructor(capacity: number) {
    this.ringSenders = new Array<string | undefined>(Math.max(1, capacity));
    this.ringIds = new Array<string | undefined>(Math.max(1, capacity));
  }

  /** Adds `sender`'s id; false when it was already there. */
  add(sender: string, id: string): boolean {
    let ids = this.bySender.get(sender);
    if (ids?.has(id)) return false;
    const evictedSender = this.ringSenders[this.next];
    if (evictedSender !== undefined) this.delete(evictedSender, this.ringIds[this.next]!);
    // New sender, or the eviction emptied and dropped this very sender's set.
    if (!ids || ids.size === 0) {
      ids ??= new Set<string>();
      this.bySender.set(sender, ids);
    }
    this.ringSenders[this.next] = sender;
    this.ringIds[this.next] = id;
    this.next = (this.next + 1) % this.ringIds.length;
    ids.add(id);
    return true;
  }

  /** Whether `sender`'s id is remembered. */
  has(sender: string, id: string): boolean {
    return this.bySender.get(sender)?.has(id) ?? false;
  }

  /** Forgets an id (its ring slot is reused later; deleting a missing id then is harmless). */
  delete(sender: string, id: string): void {
    const ids = this.bySender.get(sender);
    if (!ids?.delete(id)) return;
    if (ids.size === 0) this.bySender.delete(sender);
  }

  /** Senders with ids remembered (for tests: an evicted sender's set must not linger). */
  get senders(): number {
    return this.bySender.size;
  }
}
