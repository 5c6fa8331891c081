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
