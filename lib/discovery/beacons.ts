import { createHash, createHmac, diffieHellman, KeyObject, randomBytes } from "node:crypto";
import { deviceKeyFromSpki } from "../identity";

/** Beacons change every epoch: a listener cannot link two epochs' announcements of one device. */
export const DEFAULT_BEACON_EPOCH_MS = 10 * 60_000;
const TOKEN_BYTES = 8;
/** Up to this many known peers an announcement lists tokens; beyond, it carries a Bloom filter of them. */
const MAX_LISTED = 32;
/** The smallest list: with decoys, a device with one known peer looks like one with eight. */
const MIN_LISTED = 8;
const BLOOM_BITS_PER_ENTRY = 10;
const BLOOM_HASHES = 7;
const LIST_FORMAT = 1;
/** [format, epoch & 0xff, tokens…] */
const LIST_HEADER = 2;
const BLOOM_FORMAT = 2;
/** [format, epoch & 0xff, hash count, bits…] */
const BLOOM_HEADER = 3;

/** What the announcer knows of a peer: its id, and its public key once a handshake or the mesh showed it. */
export interface BeaconPeer {
  id: string;
  /** DER SPKI. Without it the pair's secret comes from both ids (weaker: see pairSecret). */
  key?: Buffer;
}

export interface BeaconSelf {
  deviceId: string;
  privateKeyObject: KeyObject;
}

/**
 * Private discovery beacons (Thali's, without its flaws): an announcement carries, for each known peer,
 * a token only that peer can compute (HMAC keyed by the pair's ECDH secret over the epoch and the
 * announcer's id), padded with random decoys to a power of two, in random order; beyond MAX_LISTED
 * peers a Bloom filter of the tokens (about 1.2 bytes a peer, 1 % false matches, which the TLS
 * handshake then refuses). A stranger sees random bytes that change each epoch; a known peer finds its
 * token and learns which of its peers announced, to be proven by the handshake.
 */
export class DiscoveryBeacons {
  /** By peer id and key (or none): ECDH is the costly step. */
  private readonly secrets = new Map<string, Buffer>();
  /** Per epoch (this one and those beside it): what known peers announce for this device. */
  private readonly expected = new Map<number, { signature: string; byToken: Map<string, string>; tokens: Array<{ id: string; token: Buffer }> }>();

  constructor(
    private readonly self: BeaconSelf,
    private readonly peers: () => BeaconPeer[],
    readonly epochMs = DEFAULT_BEACON_EPOCH_MS,
  ) {}

  /** Changes when the announcement's peers or their keys do (a new pairing, a first handshake): time to announce anew. */
  peersVersion(): string {
    return versionOf(this.peers());
  }

  epochOf(now: number): number {
    return Math.floor(now / this.epochMs);
  }

  /**
   * This device's announcement for the epoch of `now`, in `maxBytes` at most (a BLE attribute holds 512):
   * a Bloom filter that would be larger is made smaller, at the cost of more false matches.
   */
  announce(now = Date.now(), maxBytes = Infinity): Buffer {
    const epoch = this.epochOf(now);
    const tokens = this.peers().filter((peer) => peer.id !== this.self.deviceId).map((peer) => beaconToken(this.secretWith(peer), epoch, this.self.deviceId));
    if (tokens.length > MAX_LISTED) return bloomOf(tokens, maxBytes, epoch);
    const size = Math.max(MIN_LISTED, 2 ** Math.ceil(Math.log2(Math.max(1, tokens.length))));
    while (tokens.length < size) tokens.push(randomBytes(TOKEN_BYTES));
    shuffle(tokens);
    return Buffer.concat([Buffer.from([LIST_FORMAT, epoch & 0xff]), ...tokens]);
  }

  /** The known peers an announcement heard at `now` comes from (usually one; none from a stranger). */
  recognise(announcement: Buffer, now = Date.now()): string[] {
    const found = new Set<string>();
    // The announcer's epoch, from its low byte (the time is no secret): this one or one beside it, since
    // clocks drift. Only its tokens are tried, which keeps a Bloom filter's false matches to its own rate.
    const epoch = [this.epochOf(now), this.epochOf(now) - 1, this.epochOf(now) + 1].find((candidate) => (candidate & 0xff) === announcement[1]);
    if (epoch === undefined) return [];
    const expected = this.expectedTokens(epoch);
    if (announcement[0] === LIST_FORMAT) {
      for (let at = LIST_HEADER; at + TOKEN_BYTES <= announcement.length; at += TOKEN_BYTES) {
        const id = expected.byToken.get(announcement.subarray(at, at + TOKEN_BYTES).toString("hex"));
        if (id) found.add(id);
      }
    } else if (announcement[0] === BLOOM_FORMAT) {
      for (const { id, token } of expected.tokens) if (bloomHas(announcement, token)) found.add(id);
    }
    return [...found];
  }

  /** The tokens this device's known peers announce for it in `epoch`. */
  private expectedTokens(epoch: number): { byToken: Map<string, string>; tokens: Array<{ id: string; token: Buffer }> } {
    // Asked for every announcement heard: the peer list is read once here.
    const all = this.peers();
    const signature = versionOf(all);
    const peers = all.filter((peer) => peer.id !== this.self.deviceId);
    const cached = this.expected.get(epoch);
    if (cached?.signature === signature) return cached;
    // Also the ids-only token of a peer whose key this device knows: the peer may not know this device's key yet.
    const tokens = peers.flatMap((peer) => [
      { id: peer.id, token: beaconToken(this.secretWith(peer), epoch, peer.id) },
      ...(peer.key ? [{ id: peer.id, token: beaconToken(this.secretWith({ id: peer.id }), epoch, peer.id) }] : []),
    ]);
    const expected = { signature, byToken: new Map(tokens.map(({ id, token }) => [token.toString("hex"), id])), tokens };
    this.expected.set(epoch, expected);
    for (const held of this.expected.keys()) if (Math.abs(held - epoch) > 2) this.expected.delete(held);
    return expected;
  }

  private secretWith(peer: BeaconPeer): Buffer {
    const label = `${peer.id}:${peer.key?.toString("base64") ?? ""}`;
    let secret = this.secrets.get(label);
    if (!secret) this.secrets.set(label, (secret = pairSecret(this.self, peer)));
    return secret;
  }
}

function versionOf(peers: BeaconPeer[]): string {
  return peers.map((peer) => `${peer.id}:${peer.key ? "k" : ""}`).join();
}

/**
 * The secret two devices share for beacons: from ECDH of their keys when the peer's key is known;
 * until then (a peer configured by id, never met) from both ids, which anyone who knows both ids can
 * compute too. Private discovery hides ids from strangers, so that is who can: a peer of either.
 */
export function pairSecret(self: BeaconSelf, peer: BeaconPeer): Buffer {
  const info = `peer-mesh-beacon/1|${[self.deviceId, peer.id].sort().join("|")}`;
  if (peer.key) {
    const shared = diffieHellman({ privateKey: self.privateKeyObject, publicKey: deviceKeyFromSpki(peer.key) });
    return createHmac("sha256", shared).update(info).digest();
  }
  return createHash("sha256").update(`ids-only|${info}`).digest();
}

/** What `announcer` announces in `epoch` for the peer it shares `secret` with. */
export function beaconToken(secret: Buffer, epoch: number, announcer: string): Buffer {
  return createHmac("sha256", secret).update(`${epoch}|${announcer}`).digest().subarray(0, TOKEN_BYTES);
}

/** The number of hash positions travels with the filter, since a small one uses fewer. */
function bloomOf(tokens: Buffer[], maxBytes: number, epoch: number): Buffer {
  const wanted = Math.ceil((tokens.length * BLOOM_BITS_PER_ENTRY) / 8) * 8;
  const bits = Math.min(wanted, Math.max(8, (maxBytes - BLOOM_HEADER) * 8));
  const hashes = Math.max(1, Math.min(BLOOM_HASHES, Math.round((bits / tokens.length) * Math.LN2)));
  const filter = Buffer.alloc(BLOOM_HEADER + bits / 8);
  filter[0] = BLOOM_FORMAT;
  filter[1] = epoch & 0xff;
  filter[2] = hashes;
  for (const token of tokens) for (const bit of bloomBits(token, bits, hashes)) filter[BLOOM_HEADER + (bit >> 3)] |= 1 << (bit & 7);
  return filter;
}

function bloomHas(filter: Buffer, token: Buffer): boolean {
  const bits = (filter.length - BLOOM_HEADER) * 8;
  const hashes = filter[2];
  if (bits < 8 || !(hashes >= 1 && hashes <= BLOOM_HASHES)) return false;
  return bloomBits(token, bits, hashes).every((bit) => (filter[BLOOM_HEADER + (bit >> 3)] & (1 << (bit & 7))) !== 0);
}

/** k positions by double hashing over the token's two halves (the token is already a MAC: uniform). */
function bloomBits(token: Buffer, bits: number, hashes: number): number[] {
  const a = token.readUInt32BE(0);
  const b = token.readUInt32BE(4) | 1;
  return Array.from({ length: hashes }, (_, i) => ((a + Math.imul(i, b)) >>> 0) % bits);
}

function shuffle<T>(items: T[]): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomBytes(4).readUInt32BE(0) % (i + 1);
    [items[i], items[j]] = [items[j], items[i]];
  }
}
