/**
 * Addresses as every layer writes them: "host:port", "[v6]:port" and "<56 letters>.onion:443". One
 * place, so that a pairing code, a mDNS sighting and a dial agree on the brackets.
 */

const ADDRESS_PATTERN = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):(\d{1,5})$/;

/** True for "host:port" and "[v6]:port" with a port from 1 to 65535. */
export function isAddress(value: unknown): value is string {
  const match = typeof value === "string" ? ADDRESS_PATTERN.exec(value) : null;
  return !!match && Number(match[2]) > 0 && Number(match[2]) < 65536;
}

/** Splits "host:port" and "[v6]:port". */
export function splitAddress(address: string): { host: string; port: number } {
  if (!isAddress(address)) throw new Error(`"${address}" is not host:port`);
  const at = address.lastIndexOf(":");
  return { host: address.slice(0, at).replace(/^\[(.*)\]$/, "$1"), port: Number(address.slice(at + 1)) };
}

/** "host:port", with an IPv6 host in brackets. */
export function joinAddress(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** The virtual port every device's onion service listens on; the address is "<service id>.onion:443". */
export const ONION_PORT = 443;

const ONION_HOST = /^[a-z2-7]{56}\.onion$/;

/** A v3 onion host name (56 base32 characters and ".onion"); v2 names are dead in tor since 0.4.6. */
export function isOnionAddress(host: string): boolean {
  return ONION_HOST.test(host.toLowerCase());
}

/** True for "….onion:port": an address only Tor can reach (and that must never be looked up in DNS). */
export function isOnionHostPort(address: string): boolean {
  const at = address.lastIndexOf(":");
  return at > 0 && isOnionAddress(address.slice(0, at));
}
