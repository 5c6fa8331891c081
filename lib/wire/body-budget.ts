import { WireError } from "../protocol/errors";

/**
 * Bytes of request bodies held in memory while they are read, per peer and for the whole listener. A
 * peer that opens many large requests and never finishes them holds at most its share; everyone
 * together at most the total, so honest peers still get through and memory stays bounded.
 */
export class BodyBudget {
  private used = 0;
  private readonly byPeer = new Map<string, number>();

  constructor(
    readonly perPeer: number,
    readonly total: number,
  ) {}

  /** Counts `bytes` against `peer`'s share; throws (and counts nothing) when either bound would be passed. */
  take(peer: string, bytes: number): void {
    const mine = this.byPeer.get(peer) ?? 0;
    if (mine + bytes > this.perPeer) throw new WireError("TOO_LARGE", `this peer's unfinished requests already hold ${mine} bytes here (at most ${this.perPeer}); finish them first`, 503);
    if (this.used + bytes > this.total) throw new WireError("TOO_LARGE", `this device is holding ${this.used} bytes of unfinished requests (at most ${this.total}); try again shortly`, 503);
    this.byPeer.set(peer, mine + bytes);
    this.used += bytes;
  }

  release(peer: string, bytes: number): void {
    if (bytes <= 0) return;
    const left = (this.byPeer.get(peer) ?? 0) - bytes;
    if (left > 0) this.byPeer.set(peer, left);
    else this.byPeer.delete(peer);
    this.used = Math.max(0, this.used - bytes);
  }

  get bytesHeld(): number {
    return this.used;
  }

  /** How many peers hold bytes now (the map is keyed by peer input, so it must empty out). */
  get peersHolding(): number {
    return this.byPeer.size;
  }
}
