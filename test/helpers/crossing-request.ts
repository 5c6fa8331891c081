import { once } from "node:events";
import type { Http2SecureServer, Http2Session } from "node:http2";
import tls from "node:tls";
import type { Device, Identity } from "../../lib";
import { FLAG, FRAME, http2Frame } from "./raw-client";

const { HEADERS, RST_STREAM, SETTINGS, GOAWAY } = FRAME;
const { END_STREAM, END_HEADERS } = FLAG;
/** RST_STREAM's REFUSED_STREAM: what Node sends for a request reaching a session it has marked closed. */
export const REFUSED_STREAM = 7;

/** HPACK for GET / over https at 127.0.0.1 (indexed :method, :scheme and :path; literal :authority). */
const GET_ROOT = Buffer.concat([Buffer.from([0x82, 0x87, 0x84, 0x41, 9]), Buffer.from("127.0.0.1")]);

export interface CrossingOutcome {
  /** The device reset the request with REFUSED_STREAM: Node's refusal from inside the HEADERS callback. */
  refused: boolean;
  /** The device answered the request (a HEADERS frame on its stream). */
  answered: boolean;
  /** The last stream id of the device's GOAWAY, when it sent one. */
  goawayLastStream?: number;
  /**
   * The device's session was marked closed (session.close()) while it could still read requests: the
   * state in which Node refuses a new one from inside nghttp2's HEADERS callback.
   */
  closedWhileReading: boolean;
}

/**
 * Sends a request from `peer` whose HEADERS reach `device` in the same turn of its event loop as the
 * idle timeout of the connection they travel on: they are written, from inside that timeout, just
 * before the device's own handler runs, so the device reads them before anything it sends in reply
 * to the timeout has left. This is the race a peer sending its next request at the moment an idle
 * connection is retired runs into, made certain. Resolves when the device has closed the connection.
 */
export function requestCrossingIdleClose(device: Device, peer: Identity): Promise<CrossingOutcome> {
  return converse(device, peer, (session, socket, outcome) => {
    session.prependListener("timeout", () => {
      socket.write(http2Frame(HEADERS, END_HEADERS | END_STREAM, 1, GET_ROOT));
      // Right after the device's own timeout handler, before the request is read.
      process.nextTick(() => void (outcome.closedWhileReading ||= session.closed && !session.destroyed));
    });
  });
}

/**
 * Sends GOAWAY and, in the same write, a new request, as no honest client does: Node closes a session
 * whose peer said GOAWAY, and then refuses the request from inside the HEADERS callback, the same
 * use-after-free as above, but at a moment the peer chooses. Resolves when the device has closed the
 * connection.
 */
export function requestAfterGoaway(device: Device, peer: Identity): Promise<CrossingOutcome> {
  return converse(
    device,
    peer,
    (session, _socket, outcome) => session.prependListener("goaway", () => process.nextTick(() => void (outcome.closedWhileReading ||= session.closed && !session.destroyed))),
    (socket) => socket.write(Buffer.concat([http2Frame(GOAWAY, 0, 0, Buffer.alloc(8)), http2Frame(HEADERS, END_HEADERS | END_STREAM, 1, GET_ROOT)])),
  );
}

/**
 * A hand-written HTTP/2 connection from `peer`: `trigger` sets up, on the device's side of it, what the
 * test is about; `settled` runs once the device's SETTINGS arrived and were acknowledged.
 */
async function converse(device: Device, peer: Identity, trigger: (session: Http2Session, socket: tls.TLSSocket, outcome: CrossingOutcome) => void, settled?: (socket: tls.TLSSocket) => void): Promise<CrossingOutcome> {
  const server = (device as unknown as { server: { server: Http2SecureServer } }).server.server;
  const socket = tls.connect({ host: "127.0.0.1", port: device.port!, key: peer.privateKeyPem, cert: peer.certificatePem, rejectUnauthorized: false, ALPNProtocols: ["h2"], minVersion: "TLSv1.3" });
  socket.on("error", () => undefined);
  const closed = once(socket, "close");
  const outcome: CrossingOutcome = { refused: false, answered: false, closedWhileReading: false };
  server.once("session", (session: Http2Session) => trigger(session, socket, outcome));
  let pending = Buffer.alloc(0);
  socket.on("data", (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 9) {
      const length = pending.readUIntBE(0, 3);
      if (pending.length < 9 + length) break;
      const [type, flags, streamId] = [pending[3], pending[4], pending.readUInt32BE(5) & 0x7fffffff];
      const payload = pending.subarray(9, 9 + length);
      pending = pending.subarray(9 + length);
      if (type === SETTINGS && (flags & 1) === 0) {
        socket.write(http2Frame(SETTINGS, 1, 0));
        settled?.(socket);
      }
      if (type === HEADERS && streamId === 1) outcome.answered = true;
      if (type === RST_STREAM && streamId === 1 && payload.readUInt32BE(0) === REFUSED_STREAM) outcome.refused = true;
      if (type === GOAWAY) outcome.goawayLastStream = payload.readUInt32BE(0) & 0x7fffffff;
    }
  });
  await once(socket, "secureConnect");
  socket.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), http2Frame(SETTINGS, 0, 0)]));
  await closed;
  return outcome;
}
