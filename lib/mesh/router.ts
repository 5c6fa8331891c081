import type { DeviceDoc } from "./envelope";

/**
 * Where directed mesh documents go: a graph of the devices that published who they exchanged documents
 * with, and when. A relay hands a directed document to one neighbour per destination: the next hop on a
 * shortest path over links seen recently. Where several neighbours are equally near (a grid has many
 * shortest paths), the one whose link was seen last wins, so a copy follows one path instead of all.
 */
export class Router {
  private readonly links = new Map<string, Map<string, number>>();
  /** Distances per target, each good until the first link it used goes stale (or a device document changes the graph). */
  private readonly distanceCache = new Map<string, { distances: Map<string, number>; validUntil: number }>();

  constructor(private readonly freshMs: number) {}

  update(doc: DeviceDoc): void {
    const current = this.links.get(doc.id);
    const next = new Map(Object.entries(doc.neighbours));
    if (current && current.size === next.size && [...next].every(([id, seen]) => current.get(id) === seen)) return;
    this.links.set(doc.id, next);
    this.distanceCache.clear();
  }

  /** True when `neighbour` is a destination, or the next hop from `self` toward one. */
  forwards(self: string, neighbour: string, destinations: Iterable<string>, now = Date.now()): boolean {
    for (const destination of destinations) {
      if (destination === neighbour || this.nextHop(self, destination, now) === neighbour) return true;
    }
    return false;
  }

  /** The neighbour of `self` nearest to `destination`; ties go to the freshest link, then the lower id. */
  nextHop(self: string, destination: string, now = Date.now()): string | undefined {
    const distances = this.distancesTo(destination, now);
    const mine = distances.get(self);
    let best: { id: string; distance: number; seen: number } | undefined;
    for (const [id, seen] of this.freshLinksOf(self, now)) {
      const distance = distances.get(id);
      if (distance === undefined || (mine !== undefined && distance >= mine)) continue;
      const better = !best || distance < best.distance || (distance === best.distance && (seen > best.seen || (seen === best.seen && id < best.id)));
      if (better) best = { id, distance, seen };
    }
    return best?.id;
  }

  /** Hops from `from` to `to` over fresh links; undefined while no path is known. */
  hops(from: string, to: string, now = Date.now()): number | undefined {
    return this.distancesTo(to, now).get(from);
  }

  /** Links of `id` either end reported as fresh, with the latest time either end saw them. */
  private freshLinksOf(id: string, now: number): Map<string, number> {
    const links = new Map<string, number>();
    const note = (other: string, seen: number): void => {
      if (now - seen <= this.freshMs && seen > (links.get(other) ?? -Infinity)) links.set(other, seen);
    };
    for (const [other, seen] of this.links.get(id) ?? []) note(other, seen);
    for (const [other, neighbours] of this.links) {
      const seen = neighbours.get(id);
      if (seen !== undefined) note(other, seen);
    }
    return links;
  }

  /** Hops from every device to `target` (breadth first over links either end reported as fresh). */
  private distancesTo(target: string, now: number): Map<string, number> {
    const cached = this.distanceCache.get(target);
    if (cached && now <= cached.validUntil) return cached.distances;
    let validUntil = Infinity;
    const adjacency = new Map<string, Set<string>>();
    const link = (a: string, b: string): void => {
      if (!adjacency.has(a)) adjacency.set(a, new Set());
      adjacency.get(a)!.add(b);
    };
    for (const [id, neighbours] of this.links) {
      for (const [other, seen] of neighbours) {
        if (now - seen > this.freshMs) continue;
        validUntil = Math.min(validUntil, seen + this.freshMs);
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
    this.distanceCache.set(target, { distances, validUntil });
    return distances;
  }
}
