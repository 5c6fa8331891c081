import { Readable, Transform } from "node:stream";
import type { ReadableStream } from "node:stream/web";
import type PouchDB from "pouchdb-node";
import type { ClientPool, PeerEndpoint } from "../wire/client-pool";
import { MAX_LONGPOLL_MS } from "./couch-endpoint";

/** Bytes a replication moved, counted on the wire (bodies, not headers). */
export interface ByteCounter {
  sent: number;
  received: number;
}

export type WireFetch = (url: string, init: PouchDB.FetchInit) => Promise<Response>;

/** A replication request (not a long poll) silent for this long is given up, after the pool checked its connection. */
const REQUEST_IDLE_MS = 30_000;
/** On top of what a long poll may wait. */
const LONG_POLL_MARGIN_MS = 30_000;

/** How long a request may stay silent: a long poll is silent by design until a change or its timeout. */
function idleAllowance(search: string): number {
  const query = new URLSearchParams(search);
  if (query.get("feed") !== "longpoll") return REQUEST_IDLE_MS;
  const asked = Number(query.get("timeout"));
  return (Number.isFinite(asked) && asked > 0 ? Math.min(asked, MAX_LONGPOLL_MS) : MAX_LONGPOLL_MS) + LONG_POLL_MARGIN_MS;
}

/**
 * A fetch for PouchDB's HTTP adapter that travels over this device's mutual-TLS HTTP/2 connection to one
 * peer, pinned to its device id. PouchDB takes it as the `fetch` option, so its own replication runs
 * unchanged through the wire and the peer's ACL.
 */
export function wireFetch(pool: ClientPool, peer: () => PeerEndpoint, counter: ByteCounter = { sent: 0, received: 0 }): WireFetch {
  return async (url, init) => {
    const { pathname, search } = new URL(url);
    const headers: Record<string, string> = {};
    init.headers?.forEach((value, name) => {
      // Connection-specific headers are not allowed in HTTP/2.
      if (!["connection", "keep-alive", "transfer-encoding", "host"].includes(name.toLowerCase())) headers[name.toLowerCase()] = value;
    });
    const body = await bodyBytes(init.body);
    counter.sent += body?.length ?? 0;
    const response = await pool.request(peer(), { method: init.method ?? "GET", path: pathname + search, headers, body, signal: init.signal, timeoutMs: idleAllowance(search) });
    const counted = response.body.pipe(
      new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          counter.received += chunk.length;
          callback(null, chunk);
        },
      }),
    );
    response.body.once("error", (err) => counted.destroy(err));
    const responseHeaders = new Headers();
    for (const [name, value] of Object.entries(response.headers)) {
      if (!name.startsWith(":") && value !== undefined) responseHeaders.set(name, Array.isArray(value) ? value.join(", ") : String(value));
    }
    if (hasNoBody(response.status)) counted.resume();
    return pouchResponse(Readable.toWeb(counted) as ReadableStream<Uint8Array> as unknown as BodyInit, response.status, responseHeaders);
  };
}

/**
 * Node's own fetch for a CouchDB-protocol server over plain HTTP(S) (the cloud), counting body bytes
 * both ways as the wire fetch does.
 */
export function countingFetch(counter: ByteCounter): WireFetch {
  return async (url, init) => {
    const headers = new Headers();
    init.headers?.forEach((value, name) => headers.set(name, value));
    const body = await bodyBytes(init.body);
    counter.sent += body?.length ?? 0;
    const response = await fetch(url, { method: init.method, headers, body: body as BodyInit | undefined, signal: init.signal });
    const bytes = Buffer.from(await response.arrayBuffer());
    counter.received += bytes.length;
    return pouchResponse(bytes, response.status, response.headers);
  };
}

function hasNoBody(status: number): boolean {
  return [101, 204, 205, 304].includes(status);
}

/** A Response as PouchDB's HTTP adapter reads it: it takes attachments with buffer() where a response has it (node-fetch's), else as a Blob. */
function pouchResponse(body: BodyInit, status: number, headers: Headers): Response {
  const answer = new Response(hasNoBody(status) ? null : body, { status, headers });
  return Object.assign(answer, { buffer: async () => Buffer.from(await answer.arrayBuffer()) });
}

async function bodyBytes(body: PouchDB.FetchInit["body"]): Promise<Buffer | undefined> {
  if (body === undefined || body === null) return undefined;
  if (typeof body === "string") return Buffer.from(body);
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  return Buffer.from(await body.arrayBuffer());
}
