import { createHash } from "node:crypto";
import os from "node:os";
import { isDeviceId, shortId } from "../identity";
import { isAddress } from "../protocol/address";

const CODE_PREFIX = "peer-mesh:";

export interface PairingCode {
  id: string;
  /** Where the device listens, best first: host:port, and its onion address when it runs Tor. */
  addresses: string[];
  /**
   * The Tor client key (base64, 32 bytes) that opens the device's onion service when that admits only
   * its peers: whoever holds the code may reach it to ask to pair, for half an hour.
   */
  onionKey?: string;
}

const MAX_CODE_ADDRESSES = 4;

/** The text a device shows (and puts in its QR code) so that another can ask to pair: id and addresses. */
export function formatPairingCode(code: PairingCode): string {
  return `${CODE_PREFIX}${code.id}@${code.addresses.join(",")}${code.onionKey ? `#${Buffer.from(code.onionKey, "base64").toString("base64url")}` : ""}`;
}

export function parsePairingCode(text: unknown): PairingCode {
  const trimmed = typeof text === "string" ? text.trim() : "";
  const body = trimmed.startsWith(CODE_PREFIX) ? trimmed.slice(CODE_PREFIX.length) : trimmed;
  const [where, key] = body.split("#", 2);
  const at = where.indexOf("@");
  const id = where.slice(0, at).toLowerCase();
  const addresses = where.slice(at + 1).split(",");
  const onionKey = key === undefined ? undefined : Buffer.from(key, "base64url");
  if (at < 0 || !isDeviceId(id) || addresses.length > MAX_CODE_ADDRESSES || !addresses.every(isAddress) || (onionKey && (onionKey.length !== 32 || onionKey.toString("base64url") !== key))) {
    throw new Error(`"${trimmed.slice(0, 80)}" is not a pairing code (peer-mesh:<device id>@<host:port>[,<onion address>][#<Tor client key>])`);
  }
  return { id, addresses, ...(onionKey ? { onionKey: onionKey.toString("base64") } : {}) };
}

/**
 * Six digits both users compare: derived from the TLS session both devices share and both device ids,
 * so a device in the middle, which must run two different sessions, shows different digits on each side.
 */
export function shortAuthenticationString(keyingMaterial: Buffer, idA: string, idB: string): string {
  const [first, second] = [idA, idB].sort();
  const digest = createHash("sha256").update(keyingMaterial).update(first).update(second).digest();
  return String(digest.readUInt32BE(0) % 1_000_000).padStart(6, "0");
}

/** The address to put in a pairing code for a listener on `host`: a wildcard listener is reachable at a LAN address. */
export function advertisedHost(host: string): string {
  if (host !== "0.0.0.0" && host !== "::") return host;
  for (const addresses of Object.values(os.networkInterfaces())) {
    const lan = addresses?.find((address) => address.family === "IPv4" && !address.internal);
    if (lan) return lan.address;
  }
  return "127.0.0.1";
}

/**
 * A name a device gives itself in a pairing request, shown with its id prefix (anyone can call itself
 * "Alice's phone"), without control or direction-changing characters that could disguise it.
 */
export function claimedName(name: string | undefined, id: string): string | undefined {
  const clean = name?.replace(/[\p{C}]/gu, "").trim();
  return clean ? `${clean.slice(0, 64)} (${shortId(id)})` : undefined;
}
