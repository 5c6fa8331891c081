import should from "should";
import { Identity } from "../../lib";
import { DiscoveryBeacons, type BeaconPeer } from "../../lib/discovery/beacons";

const EPOCH_MS = 10 * 60_000;

/** Device `self`'s beacons with these peers (their keys known, unless `idsOnly`). */
function beaconsOf(self: Identity, peers: Identity[], idsOnly = false): DiscoveryBeacons {
  const list: BeaconPeer[] = peers.map((peer) => ({ id: peer.deviceId, ...(idsOnly ? {} : { key: peer.publicKeySpki }) }));
  return new DiscoveryBeacons(self, () => list, EPOCH_MS);
}

function tokensOf(announcement: Buffer): string[] {
  const tokens: string[] = [];
  for (let at = 2; at + 8 <= announcement.length; at += 8) tokens.push(announcement.subarray(at, at + 8).toString("hex"));
  return tokens;
}

describe("private discovery beacons", () => {
  const [a, b, c, stranger] = [Identity.generate(), Identity.generate(), Identity.generate(), Identity.generate()];
  const now = 1_800_000_000_000;

  it("a known peer recognises the announcer; a stranger, or a peer of someone else, recognises nobody", () => {
    const announcement = beaconsOf(a, [b]).announce(now);
    should(beaconsOf(b, [a, c]).recognise(announcement, now)).eql([a.deviceId]);
    should(beaconsOf(c, [b]).recognise(announcement, now)).eql([]);
    // A stranger who even guesses who is there, but holds neither key, has only the ids-only secret.
    should(beaconsOf(stranger, [a, b]).recognise(announcement, now)).eql([]);
  });

  it("carries no id, changes every epoch with no token in common, and differs by direction", () => {
    const fromA = beaconsOf(a, [b]);
    const first = fromA.announce(now);
    const next = fromA.announce(now + EPOCH_MS);
    for (const id of [a.deviceId, b.deviceId]) {
      should(first.toString("latin1")).not.containEql(id.slice(0, 8));
      should(first.toString("hex")).not.containEql(Buffer.from(id).toString("hex").slice(0, 16));
    }
    const common = tokensOf(first).filter((token) => tokensOf(next).includes(token));
    should(common).eql([]);
    // B's beacon for A is not A's beacon for B: an observer cannot pair two announcements up.
    const fromB = beaconsOf(b, [a]).announce(now);
    should(tokensOf(fromB).filter((token) => tokensOf(first).includes(token))).eql([]);
    // Still recognised by a clock an epoch ahead or behind (clocks drift), not two.
    should(beaconsOf(b, [a]).recognise(first, now + EPOCH_MS)).eql([a.deviceId]);
    should(beaconsOf(b, [a]).recognise(first, now - EPOCH_MS)).eql([a.deviceId]);
    should(beaconsOf(b, [a]).recognise(first, now + 2 * EPOCH_MS)).eql([]);
  });

  it("pads to a power of two with decoys (at least 8), so the count of known peers barely shows", () => {
    should(tokensOf(beaconsOf(a, [b]).announce(now))).have.length(8);
    const nine = Array.from({ length: 9 }, () => Identity.generate());
    should(tokensOf(beaconsOf(a, nine).announce(now))).have.length(16);
  });

  it("a peer that knows the announcer only by id (not met yet) still recognises it, and so does one that knows the key when the announcer does not", () => {
    should(beaconsOf(b, [a], true).recognise(beaconsOf(a, [b], true).announce(now), now)).eql([a.deviceId]);
    should(beaconsOf(b, [a]).recognise(beaconsOf(a, [b], true).announce(now), now)).eql([a.deviceId]);
  });

  it("beyond 32 known peers, a Bloom filter: sizes for 10, 100 and 1,000 peers, each recognised", function () {
    this.timeout(60_000);
    const sizes: string[] = [];
    const many = Array.from({ length: 1_000 }, () => Identity.generate());
    for (const count of [10, 100, 1_000]) {
      const peers = many.slice(0, count);
      const announcement = beaconsOf(a, peers).announce(now);
      sizes.push(`${count}: ${announcement.length} B`);
      should(beaconsOf(peers[count - 1], [a]).recognise(announcement, now)).eql([a.deviceId]);
      // A non-peer matches by chance at most rarely (1 % false matches by design; the handshake refuses them).
      const falseMatches = many.slice(0, 50).filter((other) => !peers.includes(other)).filter((other) => beaconsOf(other, [a]).recognise(announcement, now).length > 0);
      should(falseMatches.length).be.belowOrEqual(3);
    }
    console.log(`      announcement sizes: ${sizes.join(", ")}`);
    should(beaconsOf(a, many).announce(now).length).be.belowOrEqual(2_050);
    // Squeezed into a BLE attribute (512 bytes, about 4 bits a peer): still recognised, with many more
    // false matches (measured; each costs the stranger a refused handshake, and tells it nothing).
    const squeezed = beaconsOf(a, many).announce(now, 512);
    should(squeezed.length).be.belowOrEqual(512);
    should(beaconsOf(many[999], [a]).recognise(squeezed, now)).eql([a.deviceId]);
    const strangers = Array.from({ length: 200 }, () => Identity.generate());
    const matches = strangers.filter((other) => beaconsOf(other, [a]).recognise(squeezed, now).length > 0).length;
    console.log(`      1,000 peers in 512 bytes: ${matches} false matches of 200 strangers' tries`);
    should(matches).be.below(80);
  });
});
