/** A bounded set remembering the most recent ids, so repeats can be dropped. O(1) per id: a ring evicts the oldest. */
export class RecentIds {
  private readonly ids = new Set<string>();
  private readonly ring: Array<string | undefined>;
  private next = 0;

  constructor(capacity: number) {
    this.ring = new Array<string | undefined>(Math.max(1, capacity));
  }

  /** Adds the id; false when it was already there. */
  add(id: string): boolean {
    if (this.ids.has(id)) return false;
    const evicted = this.ring[this.next];
    if (evicted !== undefined) this.ids.delete(evicted);
    this.ring[this.next] = id;
    this.next = (this.next + 1) % this.ring.length;
    this.ids.add(id);
    return true;
  }

  /** Forgets an id (its ring slot is reused later; deleting a missing id then is harmless). */
  delete(id: string): void {
    this.ids.delete(id);
  }
}
