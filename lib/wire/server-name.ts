import { createHmac } from "node:crypto";
import { base32 } from "../identity";

/** A server name is good for its 10-minute window and the ones beside it (clocks on small devices drift). */
const WINDOW_MS = 10 * 60_000;
const SUFFIX = ".peer-mesh.invalid";

/**
 * The TLS server name (SNI) a client sends to a device it knows by id. A private listener serves its
 * certificate only to a client that sends its current name, that is, to one that already knows its id:
 * a stranger's handshake fails before any certificate is sent, and the name changes every window, so a
 * passive listener cannot link one window's connections to the next (it sees the name: TLS 1.3 without
 * ECH sends it in the clear). Other listeners ignore it.
 */
export function serverNameFor(deviceId: string, now = Date.now()): string {
  return nameInWindow(deviceId, Math.floor(now / WINDOW_MS));
}

/** Whether `servername` is the name of `deviceId` in the window of `now`, the one before or the one after. */
export function isServerNameFor(deviceId: string, servername: string | undefined, now = Date.now()): boolean {
  if (!servername) return false;
  const window = Math.floor(now / WINDOW_MS);
  return [window, window - 1, window + 1].some((w) => nameInWindow(deviceId, w) === servername);
}

function nameInWindow(deviceId: string, window: number): string {
  const mac = createHmac("sha256", deviceId).update(`peer-mesh-sni/1|${window}`).digest();
  return `${base32(mac.subarray(0, 16))}${SUFFIX}`;
}
