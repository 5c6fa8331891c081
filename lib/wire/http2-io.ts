import type { ClientHttp2Stream, Http2Session, Http2Stream, IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from "node:http2";
import { constants } from "node:http2";
import { WireError, wireErrorFromResponse } from "../protocol/errors";
import { Ack, HEADER_ACK, HEADER_ERROR_CODE } from "../protocol/wire";

/**
 * Resets a stream a turn later (setImmediate), outside nghttp2's read of its connection. On Node 20 a
 * reset with any code but CANCEL makes Node send what is queued at once (Http2Stream::SubmitRstStream
 * calls SendPendingData). Called during a read (an event handler, or a promise continuation: Node runs
 * those before it returns to nghttp2), a second reset sends the first, nghttp2 frees the first stream,
 * and if that is the stream it is reading, it reads it again: valgrind "224 bytes inside a block of
 * size 232 free'd" by nghttp2_session_destroy_stream under SubmitRstStream, and later glibc's
 * "corrupted size vs. prev_size" (README, "Storage across deploys and restarts"). Every reset this
 * package makes goes through here or destroyStream. Reading stops at once, so nothing more is handed on.
 */
export function resetStream(stream: Http2Stream, code: number = constants.NGHTTP2_NO_ERROR): void {
  if (stream.destroyed || stream.closed) return;
  stream.pause();
  setImmediate(() => {
    if (!stream.destroyed && !stream.closed) stream.close(code);
  });
}

/** stream.destroy(err), a turn later for the same reason as resetStream (a destroy with an error resets with INTERNAL_ERROR). */
export function destroyStream(stream: Http2Stream, err?: Error): void {
  if (stream.destroyed) return;
  stream.pause();
  setImmediate(() => stream.destroy(err));
}

/**
 * Reads a request body into memory, refusing it as soon as it passes `limit` bytes. `charge` is told of
 * every chunk before it is kept and may refuse it by throwing (a memory budget).
 */
export function readBody(stream: ServerHttp2Stream, limit: number, charge?: (bytes: number) => void): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        stream.off("data", onData);
        reject(new WireError("TOO_LARGE", `the message is larger than the ${limit} bytes this device accepts`));
        return;
      }
      try {
        charge?.(chunk.length);
      } catch (err) {
        stream.off("data", onData);
        reject(err);
        return;
      }
      chunks.push(chunk);
    };
    stream.on("data", onData);
    stream.once("end", () => resolve(Buffer.concat(chunks, size)));
    stream.once("aborted", () => reject(new WireError("STREAM_ABORTED", "the sender aborted the request")));
    stream.once("error", (err) => reject(new WireError("STREAM_ABORTED", err.message)));
  });
}

/**
 * Streams of HEAD requests: their answers carry the status and headers only. (Node 22 resets a HEAD
 * stream that is given a body, and the client then sees no status at all.)
 */
const headRequests = new WeakSet<ServerHttp2Stream>();

export function markHeadRequest(stream: ServerHttp2Stream): void {
  headRequests.add(stream);
}

/** Sends the headers and, unless the request was HEAD, the body. */
function answer(stream: ServerHttp2Stream, headers: OutgoingHttpHeaders, body: string | Buffer, after?: () => void): void {
  if (headRequests.has(stream)) {
    stream.respond(headers, { endStream: true });
    return;
  }
  stream.respond(headers);
  stream.end(body, after);
}

export function respondJson(stream: ServerHttp2Stream, body: unknown): void {
  if (stream.destroyed || stream.closed || stream.headersSent) return;
  answer(stream, { ":status": 200, "content-type": "application/json" }, JSON.stringify(body));
}

/** A CouchDB-protocol answer: JSON, or an attachment's bytes. */
export function respondCouch(stream: ServerHttp2Stream, reply: { status: number; json: unknown } | { status: number; binary: Buffer; contentType: string }): void {
  if (stream.destroyed || stream.closed || stream.headersSent) return;
  const binary = "binary" in reply;
  answer(stream, { ":status": reply.status, "content-type": binary ? reply.contentType : "application/json" }, binary ? reply.binary : JSON.stringify(reply.json));
}

export function respondAck(stream: ServerHttp2Stream, ack: Ack): void {
  if (stream.destroyed || stream.closed || stream.headersSent) return;
  stream.respond({ ":status": 200, [HEADER_ACK]: JSON.stringify(ack) }, { endStream: true });
}

/** A request's answer: the ack in its header, the reply as the body, typed as a message's. */
export function respondReply(stream: ServerHttp2Stream, ack: Ack, reply: { body: Buffer; contentType: string }): void {
  if (stream.destroyed || stream.closed || stream.headersSent) return;
  answer(stream, { ":status": 200, [HEADER_ACK]: JSON.stringify(ack), "content-type": reply.contentType }, reply.body);
}

export function ackFromResponse(response: ClientResponse): Ack {
  const header = response.headers[HEADER_ACK];
  try {
    return JSON.parse(String(header)) as Ack;
  } catch {
    throw new WireError("REMOTE_ERROR", "the peer's answer carries no readable acknowledgement");
  }
}

/**
 * Answers with the error's status and reason, then resets the stream so a client still uploading stops
 * at once instead of waiting on flow control for a body nobody reads.
 */
export function respondError(stream: ServerHttp2Stream, err: unknown): void {
  const wireError = err instanceof WireError ? err : new WireError("REMOTE_ERROR", (err as Error)?.message ?? String(err));
  if (stream.destroyed || stream.closed) return;
  if (!stream.headersSent) {
    answer(stream, { ":status": wireError.httpStatus, "content-type": "application/json", [HEADER_ERROR_CODE]: wireError.code }, JSON.stringify({ error: wireError.code, reason: wireError.message }), () => {
      if (!stream.readableEnded) resetStream(stream, constants.NGHTTP2_NO_ERROR);
    });
  } else {
    resetStream(stream, constants.NGHTTP2_INTERNAL_ERROR);
  }
}

export interface ClientResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

const MAX_RESPONSE_BYTES = 1024 * 1024;

/**
 * The peer's answer. A peer that refuses an upload answers and then resets the stream, so an answer whose
 * body was cut short by the reset still counts: the status and reason are what the caller needs.
 */
export function readResponse(request: ClientHttp2Stream): Promise<ClientResponse> {
  return new Promise((resolve, reject) => {
    let answer: ClientResponse | undefined;
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (err?: Error): void => {
      if (answer) resolve({ ...answer, body: Buffer.concat(chunks) });
      else reject(err ?? new Error("the stream closed without an answer"));
    };
    request.once("response", (headers) => {
      answer = { status: Number(headers[":status"]), headers, body: Buffer.alloc(0) };
      request.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size <= MAX_RESPONSE_BYTES) chunks.push(chunk);
      });
    });
    request.once("end", () => settle());
    request.once("error", (err) => settle(err));
    request.once("close", () => settle());
  });
}

export function errorFromResponse(response: ClientResponse): WireError {
  let parsed: { error?: unknown; reason?: unknown } = {};
  try {
    parsed = JSON.parse(response.body.toString("utf8")) as typeof parsed;
  } catch {
    // a peer that is not one of ours; the status alone will have to do
  }
  return wireErrorFromResponse(response.status, parsed.error ?? response.headers[HEADER_ERROR_CODE], parsed.reason);
}

/** How long a retired session may finish a request that crossed its GOAWAY before it is destroyed. */
export const RETIRE_GRACE_MS = 1_000;

/**
 * Ends an idle session, without session.close(). close() marks the session closed, and Node then refuses
 * a request that crossed the GOAWAY on the wire with RST_STREAM from inside nghttp2's HEADERS callback
 * (onSessionHeaders in lib/internal/http2/core.js). Node 20 sends that frame at once, and nghttp2 frees
 * the stream it is still reading: a use-after-free (valgrind: "224 bytes inside a block of size 232
 * free'd" by nghttp2_session_destroy_stream) that corrupts the heap and later aborts the process with
 * glibc's "corrupted size vs. prev_size" (README, "Storage across deploys and restarts"). A GOAWAY alone
 * leaves such a request to nghttp2, which answers or ignores it; the session goes after a short grace.
 */
export function retireSession(session: Http2Session, graceMs = RETIRE_GRACE_MS): void {
  if (session.destroyed || session.closed) return;
  session.goaway(constants.NGHTTP2_NO_ERROR);
  const timer = setTimeout(() => session.destroy(), graceMs);
  timer.unref();
  session.once("close", () => clearTimeout(timer));
}

/**
 * session.setTimeout, with the timer released when the session ends. Node's http2 leaves a session's
 * idle timer running after the session is destroyed, and the timer holds the whole session object until
 * it fires: a known peer's after 120 s. Static discovery probes each known address every few seconds
 * with a connection of its own (a TLS handshake, then gone), so a device held hundreds of dead sessions
 * (README, "Memory"). setTimeout(0) cannot clear it then (it does nothing once the session is destroyed,
 * and a session whose socket closed is destroyed by Node without passing its destroy method), so the
 * timer is cleared through Node's own key for it.
 */
export function setIdleTimeout(session: Http2Session, ms: number, onIdle: () => void): void {
  session.setTimeout(ms, onIdle);
  session.once("close", () => clearTimeout(idleTimerOf(session)));
}

/** The timer session.setTimeout set (kTimeout in Node's lib/internal/http2/core.js), if this Node keeps it there. */
function idleTimerOf(session: Http2Session): NodeJS.Timeout | undefined {
  const key = Object.getOwnPropertySymbols(session).find((symbol) => symbol.description === "timeout");
  const timer = key ? (session as unknown as Record<symbol, unknown>)[key] : undefined;
  return timer instanceof Object && "refresh" in timer ? (timer as NodeJS.Timeout) : undefined;
}
