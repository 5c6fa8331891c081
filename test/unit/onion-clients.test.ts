import { createPrivateKey, createPublicKey, diffieHellman } from "node:crypto";
import should from "should";
import { Identity, parsePairingCode } from "../../lib";
import { formatPairingCode } from "../../lib/acl/pairing";
import { OnionClients } from "../../lib/device/onion-clients";
import { base32, clientKeyFromPrivate, randomClientKey } from "../../lib/tor/client-auth";

/** The OnionClients of device `self`, which knows these peers (with their keys when `withKeys`). */
function clientsOf(self: Identity, peers: Identity[], options: { withKeys?: boolean; restricted?: boolean } = {}): OnionClients {
  const withKeys = options.withKeys ?? true;
  const known = new Map(peers.map((peer) => [peer.deviceId, peer]));
  const ref = (id: string) => ({ id, ...(withKeys && known.has(id) ? { key: known.get(id)!.publicKeySpki } : {}) });
  return new OnionClients({ self, admitted: () => peers.map((peer) => ref(peer.deviceId)), peer: ref, restricted: options.restricted ?? true });
}

describe("Tor client authorisation keys", () => {
  const [a, b, stranger] = [Identity.generate(), Identity.generate(), Identity.generate()];

  it("derives an x25519 pair tor accepts: base32 public key of 52 characters, a 32-byte private key whose public half it is", () => {
    const key = randomClientKey();
    should(key.publicKey).match(/^[A-Z2-7]{52}$/);
    should(Buffer.from(key.privateKey, "base64")).have.length(32);
    should(clientKeyFromPrivate(key.privateKey)).eql(key);
    // An independent check of the public half: ECDH with it equals ECDH with the private key's own public key.
    const other = createPrivateKey({ key: Buffer.concat([Buffer.from("302e020100300506032b656e04220420", "hex"), Buffer.alloc(32, 7)]), format: "der", type: "pkcs8" });
    const mine = createPrivateKey({ key: Buffer.concat([Buffer.from("302e020100300506032b656e04220420", "hex"), Buffer.from(key.privateKey, "base64")]), format: "der", type: "pkcs8" });
    const shared = diffieHellman({ privateKey: other, publicKey: createPublicKey(mine) });
    should(shared).have.length(32);
    should(base32(createPublicKey(mine).export({ format: "der", type: "spki" }).subarray(-32))).equal(key.publicKey);
    should(base32(Buffer.from("foobar"))).equal("MZXW6YTBOI"); // RFC 4648's own example
  });

  it("B's service admits the key A derives for it, and no key a stranger derives", () => {
    const atB = clientsOf(b, [a]);
    const admitted = atB.authorized()!;
    should(admitted).have.length(1);
    const fromA = clientsOf(a, [b]).credentials(b.deviceId).map((key) => clientKeyFromPrivate(key).publicKey);
    should(fromA[0]).equal(admitted[0]);
    const fromStranger = clientsOf(stranger, [b]).credentials(b.deviceId).map((key) => clientKeyFromPrivate(key).publicKey);
    should(fromStranger.some((key) => admitted.includes(key))).be.false();
    // The key for B's service is not the key for A's: each direction has its own.
    should(clientsOf(a, [b]).authorized()).not.containEql(admitted[0]);
  });

  it("admits the ids-only key while the peer's key is unknown, and a client that does not know the service's key tries that one", () => {
    const admitted = clientsOf(b, [a], { withKeys: false }).authorized()!;
    const fromA = clientsOf(a, [b], { withKeys: false }).credentials(b.deviceId).map((key) => clientKeyFromPrivate(key).publicKey);
    should(fromA).eql(admitted);
    // A that knows B's key tries the pair's key first, then the ids-only one.
    const both = clientsOf(a, [b]).credentials(b.deviceId).map((key) => clientKeyFromPrivate(key).publicKey);
    should(both).have.length(2);
    should(both[1]).equal(admitted[0]);
  });

  it("an open service (no private discovery) admits anyone and makes no pairing key", () => {
    const open = clientsOf(b, [a], { restricted: false });
    should(open.authorized()).be.undefined();
    should(open.pairingKey()).be.undefined();
    should(open.credentials(a.deviceId)).have.length(2);
  });

  it("a pairing code's key is admitted, kept for the next code, and travels in the code", () => {
    const atB = clientsOf(b, []);
    const key = atB.pairingKey()!;
    should(atB.pairingKey()).equal(key);
    should(atB.authorized()).eql([clientKeyFromPrivate(key).publicKey]);
    const onion = `${"c".repeat(56)}.onion:443`;
    const code = formatPairingCode({ id: b.deviceId, addresses: [onion], onionKey: key });
    should(code).match(/^peer-mesh:[a-z2-7]+@c{56}\.onion:443#[A-Za-z0-9_-]{43}$/);
    should(parsePairingCode(code)).eql({ id: b.deviceId, addresses: [onion], onionKey: key });
    should(() => parsePairingCode(`${code.slice(0, -2)}`)).throw(/not a pairing code/);
    should(() => parsePairingCode(`${code}A`)).throw(/not a pairing code/);
  });
});
