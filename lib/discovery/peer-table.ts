import { EventEmitter } from "node:events";
import type { Sighting, Transport } from "./transport";

/** What the device knows about one peer in range, merged over every transport that sees it. */
export interface PeerInfo {
  id: string;
  name?: string;
  /** Transports that currently see the peer, best first. */
  transports: string[];
  /** The best address: of a route whose id was verified if there is one, then of the best-ranked transport. */
  address: string;
  /** The transport that address belongs to. */
  transport: string;
  /** Epoch milliseconds of the latest sighting by any transport. */
  lastSeen: number;
  /** The peer's key is one this device was configured to know. */
  trusted: boolean;
  /** Some transport proved the id with a TLS handshake (mDNS alone only claims it). */
  verified: boolean;
}

export interface PeerTableEvents {
  found: [peer: PeerInfo];
  lost: [peer: PeerInfo];
  /** The best address, the set of transports, the name or the verification changed. */
  changed: [peer: PeerInfo];
}

export interface PeerTableOptions {
  /** Peers kept at most; a hostile network cannot grow the table past it. */
  maxPeers?: number;
  isTrusted?: (id: string) => boolean;
  /** Configured names win over announced ones. */
  nameOf?: (id: string) => string | undefined;
  now?: () => number;
}

interface Route {
  transport: string;
  rank: number;
  address: string;
  name?: string;
  verified: boolean;
  lastSeen: number;
}

export const DEFAULT_MAX_PEERS = 200;

/**
 * Merges what every transport reports about each device id into one entry, keeps the best address, and
 * says when a peer comes into range, leaves it, or changes. Full tables make room only for trusted peers,
 * by evicting the untrusted peer seen longest ago; other newcomers are counted in `dropped` and ignored.
 */
export class PeerTable extends EventEmitter<PeerTableEvents> {
  readonly maxPeers: number;
  /** Sightings ignored because the table was full. */
  dropped = 0;
  private readonly routes = new Map<string, Map<string, Route>>();
  private readonly isTrusted: (id: string) => boolean;
  private readonly nameOf: (id: string) => string | undefined;
  private readonly now: () => number;

  constructor(options: PeerTableOptions = {}) {
    super();
    this.maxPeers = options.maxPeers ?? DEFAULT_MAX_PEERS;
    this.isTrusted = options.isTrusted ?? (() => false);
    this.nameOf = options.nameOf ?? (() => undefined);
    this.now = options.now ?? Date.now;
  }

  /** Feeds a transport's events into the table; the returned function detaches it and forgets its routes. */
  attach(transport: Transport): () => void {
    const onFound = (sighting: Sighting): void => this.report(transport.name, transport.rank, sighting);
    const onLost = (id: string): void => this.withdraw(transport.name, id);
    transport.on("found", onFound);
    transport.on("lost", onLost);
    return () => {
      transport.off("found", onFound);
      transport.off("lost", onLost);
      for (const id of [...this.routes.keys()]) this.withdraw(transport.name, id);
    };
  }

  report(transport: string, rank: number, sighting: Sighting): void {
    let routes = this.routes.get(sighting.id);
    const isNew = !routes;
    if (!routes) {
      if (!this.makeRoomFor(sighting.id)) {
        this.dropped++;
        return;
      }
      routes = new Map();
      this.routes.set(sighting.id, routes);
    }
    const before = routes.size > 0 ? this.describe(sighting.id, routes) : undefined;
    routes.set(transport, { transport, rank, address: sighting.address, name: sighting.name, verified: sighting.verified, lastSeen: this.now() });
    const after = this.describe(sighting.id, routes);
    if (isNew) this.emit("found", after);
    else if (before && peerDiffers(before, after)) this.emit("changed", after);
  }

  withdraw(transport: string, id: string): void {
    const routes = this.routes.get(id);
    if (!routes?.has(transport)) return;
    const before = this.describe(id, routes);
    routes.delete(transport);
    if (routes.size === 0) {
      this.routes.delete(id);
      this.emit("lost", before);
    } else {
      this.emit("changed", this.describe(id, routes));
    }
  }

  get(id: string): PeerInfo | undefined {
    const routes = this.routes.get(id);
    return routes ? this.describe(id, routes) : undefined;
  }

  /**
   * The route a peer is dialled by: the first in describe's order. Looked up for every message sent, so
   * it picks by one pass instead of describing the peer (a sort and five arrays a message).
   */
  bestRoute(id: string): { readonly transport: string; readonly address: string } | undefined {
    const routes = this.routes.get(id);
    if (!routes) return undefined;
    let best: Route | undefined;
    for (const route of routes.values()) if (!best || routeOrder(route, best) < 0) best = route;
    return best;
  }

  /** The route a given transport has to a peer, for dialling through that transport. */
  route(id: string, transport: string): { address: string } | undefined {
    const route = this.routes.get(id)?.get(transport);
    return route && { address: route.address };
  }

  list(): PeerInfo[] {
    return [...this.routes.entries()].map(([id, routes]) => this.describe(id, routes));
  }

  get size(): number {
    return this.routes.size;
  }

  private makeRoomFor(id: string): boolean {
    if (this.routes.size < this.maxPeers) return true;
    if (!this.isTrusted(id)) return false;
    let oldest: { id: string; lastSeen: number } | undefined;
    for (const [candidate, routes] of this.routes) {
      if (this.isTrusted(candidate)) continue;
      const lastSeen = Math.max(...[...routes.values()].map((route) => route.lastSeen));
      if (!oldest || lastSeen < oldest.lastSeen) oldest = { id: candidate, lastSeen };
    }
    if (!oldest) return false;
    const evicted = this.describe(oldest.id, this.routes.get(oldest.id)!);
    this.routes.delete(oldest.id);
    this.emit("lost", evicted);
    return true;
  }

  private describe(id: string, routes: Map<string, Route>): PeerInfo {
    const ordered = [...routes.values()].sort(routeOrder);
    const best = ordered[0];
    return {
      id,
      name: this.nameOf(id) ?? ordered.find((route) => route.name)?.name,
      transports: ordered.map((route) => route.transport),
      address: best.address,
      transport: best.transport,
      lastSeen: Math.max(...ordered.map((route) => route.lastSeen)),
      trusted: this.isTrusted(id),
      verified: ordered.some((route) => route.verified),
    };
  }
}

/**
 * Routes best first. A route whose id a TLS handshake proved beats any mere claim of it (an mDNS
 * announcement anyone can make with a known peer's id), whatever the ranks; among equals, the better
 * transport, then the freshest.
 */
function routeOrder(a: Route, b: Route): number {
  return Number(b.verified) - Number(a.verified) || a.rank - b.rank || b.lastSeen - a.lastSeen;
}

/** Whether two descriptions of a peer differ in anything a user would see change. */
export function peerDiffers(a: PeerInfo, b: PeerInfo): boolean {
  return a.address !== b.address || a.transport !== b.transport || a.name !== b.name || a.verified !== b.verified || a.transports.join() !== b.transports.join();
}
