import type { Database } from "../storage/database";

/** A peer this device paired with: who, where its code said it listens, and into which group it went. */
export interface PairedPeer {
  id: string;
  name?: string;
  /** Addresses from the peer's pairing code (direct and onion), best first; none when the peer asked us. */
  addresses: string[];
  group: string;
  pairedAt: number;
}

/** In a _local document: it never replicates, and no peer can reach it (the mesh route refuses _local). */
const PAIRED_DOC = "_local/peer-mesh-paired";
/** Paired peers kept at most; the oldest go first. */
const MAX_PAIRED = 1_000;

interface PairedDoc {
  _id: string;
  _rev?: string;
  peers: PairedPeer[];
}

/**
 * The peers this device paired with, kept with its storage so that a pairing lasts across restarts
 * (two devices on different subnets find each other again only through the addresses the code gave).
 */
export class PairedPeers {
  private peers = new Map<string, PairedPeer>();
  private saving: Promise<unknown> = Promise.resolve();

  constructor(private readonly db: Database) {}

  async load(): Promise<PairedPeer[]> {
    const doc = await this.db.get<PairedDoc>(PAIRED_DOC).catch(() => undefined);
    this.peers = new Map((doc?.peers ?? []).filter((peer) => typeof peer?.id === "string").map((peer) => [peer.id, peer]));
    return this.list();
  }

  list(): PairedPeer[] {
    return [...this.peers.values()].sort((a, b) => a.pairedAt - b.pairedAt);
  }

  get(id: string): PairedPeer | undefined {
    return this.peers.get(id);
  }

  /** Records a pairing (replacing an earlier one with the same peer) and writes the list; resolves once it is on disk. */
  add(peer: PairedPeer): Promise<void> {
    this.peers.delete(peer.id);
    this.peers.set(peer.id, peer);
    while (this.peers.size > MAX_PAIRED) this.peers.delete(this.peers.keys().next().value as string);
    const write = async (): Promise<void> => {
      const existing = await this.db.get<PairedDoc>(PAIRED_DOC).catch(() => undefined);
      await this.db.put<PairedDoc>({ _id: PAIRED_DOC, _rev: existing?._rev, peers: this.list() });
    };
    const next = this.saving.then(write, write);
    this.saving = next.catch(() => undefined);
    return next;
  }

  async close(): Promise<void> {
    await this.saving;
  }
}
