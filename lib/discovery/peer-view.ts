import { EventEmitter } from "node:events";
import { peerDiffers, PeerInfo, PeerTable, PeerTableEvents } from "./peer-table";

export interface PeerFilter {
  /** Transport names to show; empty or absent: all. */
  transports?: string[];
  trustedOnly?: boolean;
}

/**
 * The part of a PeerTable one consumer cares about (some transports, trusted peers only), with its own
 * found / lost / changed: a peer seen first over mDNS and later over a static address is "found" for a
 * view of static peers when the static transport reports it.
 */
export class PeerView extends EventEmitter<PeerTableEvents> {
  private readonly visible = new Map<string, PeerInfo>();
  private readonly onEvent: (peer: PeerInfo) => void;

  constructor(
    private readonly table: PeerTable,
    private readonly filter: PeerFilter = {},
  ) {
    super();
    this.onEvent = (peer) => this.update(peer.id, peer);
    for (const event of ["found", "lost", "changed"] as const) table.on(event, this.onEvent);
  }

  /** Peers the view shows now. */
  list(): PeerInfo[] {
    return this.table.list().flatMap((peer) => {
      const shown = this.shown(peer);
      return shown ? [shown] : [];
    });
  }

  get size(): number {
    return this.visible.size;
  }

  close(): void {
    for (const event of ["found", "lost", "changed"] as const) this.table.off(event, this.onEvent);
    this.visible.clear();
  }

  private update(id: string, last: PeerInfo): void {
    const current = this.table.get(id);
    const shown = current && this.shown(current);
    const wasVisible = this.visible.has(id);
    const before = this.visible.get(id);
    if (shown) this.visible.set(id, shown);
    else this.visible.delete(id);
    if (shown && !wasVisible) this.emit("found", shown);
    else if (!shown && before) this.emit("lost", { ...before, lastSeen: last.lastSeen });
    else if (shown && before && peerDiffers(before, shown)) this.emit("changed", shown);
  }

  /** The peer as this view describes it (only its selected transports), or undefined if hidden. */
  private shown(peer: PeerInfo): PeerInfo | undefined {
    if (this.filter.trustedOnly && !peer.trusted) return undefined;
    const wanted = this.filter.transports;
    if (!wanted || wanted.length === 0) return peer;
    const transports = peer.transports.filter((name) => wanted.includes(name));
    if (transports.length === 0) return undefined;
    const best = transports[0];
    return { ...peer, transports, transport: best, address: best === peer.transport ? peer.address : (this.table.route(peer.id, best)?.address ?? peer.address) };
  }
}
