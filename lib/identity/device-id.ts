import { createHash, KeyObject } from "node:crypto";

const BASE32_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567";

/** RFC 4648 base32, lower case, without padding (ids end up in URLs, TXT records and QR codes). */
export function base32(bytes: Uint8Array): string {
  let out = "";
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32_ALPHABET[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32_ALPHABET[(buffer << (5 - bits)) & 31];
  return out;
}

/** A device id is the SHA-256 of the DER SubjectPublicKeyInfo, in base32: 52 characters. */
export function deviceIdOf(publicKey: KeyObject): string {
  return deviceIdOfSpki(publicKey.export({ type: "spki", format: "der" }));
}

/** The device id of a key already in DER SubjectPublicKeyInfo form. */
export function deviceIdOfSpki(spki: Buffer): string {
  return base32(createHash("sha256").update(spki).digest());
}

const DEVICE_ID_PATTERN = /^[a-z2-7]{52}$/;

export function isDeviceId(value: unknown): value is string {
  return typeof value === "string" && DEVICE_ID_PATTERN.test(value);
}

/** The prefix people read aloud or compare on a screen; machines always use the whole id. */
export function shortId(deviceId: string): string {
  return deviceId.slice(0, 8);
}

/** The shortest id prefix a reference may use: shorter ones would match more than one device too often. */
export const MIN_ID_PREFIX = 8;

/**
 * The devices among `ids` that `reference` names: its whole id, or an id prefix of at least
 * MIN_ID_PREFIX characters; trimmed and in any case, as people type them. One match is an answer;
 * more than one is ambiguous, and the caller says so.
 */
export function matchDeviceIds(reference: string, ids: Iterable<string>): string[] {
  const wanted = reference.trim().toLowerCase();
  const all = [...ids];
  if (all.includes(wanted)) return [wanted];
  return wanted.length >= MIN_ID_PREFIX ? all.filter((id) => id.startsWith(wanted)) : [];
}
