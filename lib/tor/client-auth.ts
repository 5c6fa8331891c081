import { createHmac, createPrivateKey, createPublicKey, randomBytes } from "node:crypto";
import { base32 as lowerBase32 } from "../identity/device-id";

/**
 * A v3 onion service client-authorisation key pair (x25519): the service lists the public key, and a
 * client whose tor holds the private key can decrypt the service's descriptor; anyone else cannot even
 * learn its introduction points, let alone reach the listener.
 */
export interface OnionClientKey {
  /** For ADD_ONION ClientAuthV3=: base32 of the 32-byte public key, unpadded, as tor writes it. */
  publicKey: string;
  /** For ONION_CLIENT_AUTH_ADD … x25519:<this>: base64 of the 32-byte private key. */
  privateKey: string;
}

const LABEL = "peer-mesh-tor-client/1";
/** PKCS#8 for an X25519 private key, up to the 32 raw bytes (RFC 8410). */
const X25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");

/**
 * The key a client uses for `serviceOwnerId`'s onion service, from the secret the two devices share
 * (pairSecret: ECDH of their keys). Both compute it and nobody else can: the service lists its public
 * half, the client gives its private half to its tor. No key travels anywhere.
 */
export function pairClientKey(pairSecret: Buffer, serviceOwnerId: string): OnionClientKey {
  return clientKeyFromSeed(createHmac("sha256", pairSecret).update(`${LABEL}|${serviceOwnerId}`).digest());
}

/** A key of its own (a pairing code's, good for one pairing window). */
export function randomClientKey(): OnionClientKey {
  return clientKeyFromSeed(randomBytes(32));
}

/** The pair for a 32-byte private key given as base64 (what a pairing code carries). */
export function clientKeyFromPrivate(privateKey: string): OnionClientKey {
  const seed = Buffer.from(privateKey, "base64");
  if (seed.length !== 32) throw new Error("an onion client key is 32 bytes (base64)");
  return clientKeyFromSeed(seed);
}

function clientKeyFromSeed(seed: Buffer): OnionClientKey {
  const secret = Buffer.from(seed);
  // RFC 7748 clamping, done here so that tor and node:crypto start from the very same scalar.
  secret[0] &= 248;
  secret[31] &= 127;
  secret[31] |= 64;
  const key = createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, secret]), format: "der", type: "pkcs8" });
  const spki = createPublicKey(key).export({ format: "der", type: "spki" });
  return { publicKey: base32(spki.subarray(spki.length - 32)), privateKey: secret.toString("base64") };
}

/** RFC 4648 base32 without padding, upper case, as tor writes keys (the device ids' encoding, upper-cased). */
export function base32(bytes: Buffer): string {
  return lowerBase32(bytes).toUpperCase();
}
