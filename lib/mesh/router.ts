import type { DeviceDoc } from "./envelope";

/**
 * Where directed mesh documents go: a graph of the devices that published who they exchanged documents
 * with, and when. A relay hands a document to a neighbour only when that neighbour is nearer (in hops over
 * links seen recently) to one of the document's destinations than the relay itself.
 */
export class Router {
  private readonly links = new Map<string, Map<string, number>>();
  private readonly distanceCache = new Map<string, Map<string, number>>();

  constructor(private readonly freshMs: number) {}

  update(doc: DeviceDoc): void {
    const current = this.links.get(doc.id);
    const next = new Map(Object.entries(doc.neighbours));
    if (current && current.size === next.size && [...next].every(([id, seen]) => current.get(id) === seen)) return;
    this.links.set(doc.id, next);
    this.distanceCache.clear();
  }

  /** True when `neighbour` is a destination, or is on a shortest known path from `self` toward one. */
  forwards(self: string, neighbour: string, destinations: Iterable<string>, now = Date.now()): boolean {
    for (const destination of destinations) {
      if (destination === neighbour) return true;
      const distances = this.distancesTo(destination, now);
      const mine = distances.get(self);
      const theirs = distances.get(neighbour);
      if (theirs !== undefined && (mine === undefined || theirs < mine)) return true;
    }
    return false;
  }

  /** Whether any path from `self` to one of `destinations` is known. */
  knowsPath(self: string, destinations: Iterable<string>, now = Date.now()): boolean {
    for (const destination of destinations) if (destination === self || this.distancesTo(destination, now).has(self)) return true;
    return false;
  }

  /** Hops from every device to `target` (breadth first over links either end reported as fresh). */
  private distancesTo(target: string, now: number): Map<string, number> {
    const cached = this.distanceCache.get(target);
    if (cached) return cached;
    const adjacency = new Map<string, Set<string>>();
    const link = (a: string, b: string): void => {
      if (!adjacency.has(a)) adjacency.set(a, new Set());
      adjacency.get(a)!.add(b);
    };
    for (const [id, neighbours] of this.links) {
      for (const [other, seen] of neighbours) {
        if (now - seen > this.freshMs) continue;
        link(id, other);
        link(other, id);
      }
    }
    const distances = new Map<string, number>([[target, 0]]);
    let frontier = [target];
    while (frontier.length > 0) {
      const next: string[] = [];
      for (const id of frontier) {
        for (const other of adjacency.get(id) ?? []) {
          if (distances.has(other)) continue;
          distances.set(other, distances.get(id)! + 1);
          next.push(other);
        }
      }
      frontier = next;
    }
    this.distanceCache.set(target, distances);
    return distances;
  }
}
