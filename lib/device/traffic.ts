import type { SyncReport } from "../replication/replicator";
import type { RefusalKind } from "../wire/server";

export interface PeerTraffic {
  messagesIn: number;
  messagesOut: number;
  streamsIn: number;
  streamsOut: number;
  /** Message and stream bodies. */
  bytesIn: number;
  bytesOut: number;
}

export interface SyncTraffic {
  /** When the last session finished without an error (ms since the epoch). */
  lastAt: number;
  sessions: number;
  /** Documents written by the sessions, on either side (a session both ways reports them together). */
  docsWritten: number;
  bytesIn: number;
  bytesOut: number;
  failures: number;
}

/** Peers counted at most: past it, the least recently active is dropped (its counters restart if it comes back). */
const MAX_PEERS = 2_000;

/** Why documents were purged: a database's size cap or maximum age, or a flow's msg.purge. */
export type PurgeReason = "size" | "age" | "flow";

/**
 * What a device exchanged, counted since it started: per peer, messages and streams each way with their
 * bytes; refused requests by kind; and per peer and database, replication sessions. Read by the metrics
 * route (Prometheus text) and the diagnostics download.
 */
export class Traffic {
  private readonly peers = new Map<string, PeerTraffic>();
  private readonly refusals = new Map<RefusalKind, number>();
  private readonly syncs = new Map<string, Map<string, SyncTraffic>>();
  /** Per database and reason (size, age, flow), documents purged here. */
  private readonly purges = new Map<string, Map<PurgeReason, number>>();

  received(peerId: string, kind: "msg" | "stream", bytes: number): void {
    const peer = this.peer(peerId);
    if (kind === "msg") peer.messagesIn += 1;
    else peer.streamsIn += 1;
    peer.bytesIn += bytes;
  }

  sent(peerId: string, kind: "msg" | "stream", bytes: number): void {
    const peer = this.peer(peerId);
    if (kind === "msg") peer.messagesOut += 1;
    else peer.streamsOut += 1;
    peer.bytesOut += bytes;
  }

  refused(kind: RefusalKind): void {
    this.refusals.set(kind, (this.refusals.get(kind) ?? 0) + 1);
  }

  synced(report: SyncReport, at: number): void {
    let byDatabase = this.syncs.get(report.peer);
    if (!byDatabase) this.syncs.set(report.peer, (byDatabase = new Map()));
    const sync = byDatabase.get(report.database) ?? { lastAt: 0, sessions: 0, docsWritten: 0, bytesIn: 0, bytesOut: 0, failures: 0 };
    sync.sessions += 1;
    sync.docsWritten += report.docsWritten;
    sync.bytesIn += report.bytesReceived;
    sync.bytesOut += report.bytesSent;
    sync.failures += report.failures;
    if (report.errors.length === 0) sync.lastAt = at;
    byDatabase.set(report.database, sync);
  }

  purged(database: string, reason: PurgeReason, count: number): void {
    let byReason = this.purges.get(database);
    if (!byReason) this.purges.set(database, (byReason = new Map()));
    byReason.set(reason, (byReason.get(reason) ?? 0) + count);
  }

  get purgedByDatabase(): ReadonlyMap<string, ReadonlyMap<PurgeReason, number>> {
    return this.purges;
  }

  get byPeer(): ReadonlyMap<string, Readonly<PeerTraffic>> {
    return this.peers;
  }

  get refusedByKind(): ReadonlyMap<RefusalKind, number> {
    return this.refusals;
  }

  /** Per peer (or "cloud"), per database ("mesh" for the store-and-forward documents). */
  get bySync(): ReadonlyMap<string, ReadonlyMap<string, Readonly<SyncTraffic>>> {
    return this.syncs;
  }

  /** The peer last counted (the last in `peers`' order). */
  private latest?: string;

  private peer(peerId: string): PeerTraffic {
    let peer = this.peers.get(peerId);
    // Already the most recent: the common case (a burst from one peer) costs one lookup, not a delete and an insert.
    if (peer && peerId === this.latest) return peer;
    this.latest = peerId;
    if (peer) {
      // Most recently active last, so the first is the one to drop at the cap.
      this.peers.delete(peerId);
    } else {
      peer = { messagesIn: 0, messagesOut: 0, streamsIn: 0, streamsOut: 0, bytesIn: 0, bytesOut: 0 };
      if (this.peers.size >= MAX_PEERS) this.peers.delete(this.peers.keys().next().value!);
    }
    this.peers.set(peerId, peer);
    return peer;
  }
}
