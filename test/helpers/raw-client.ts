import http2, { ClientHttp2Session, OutgoingHttpHeaders } from "node:http2";

/** A bare HTTP/2 client with any key and certificate, to send what our own client never would. */
export async function rawSession(port: number, credentials: { key?: string; cert?: string }, localAddress?: string): Promise<ClientHttp2Session> {
  // localAddress: another loopback address (127.0.0.2 …) stands for another machine on the network.
  const session = http2.connect(`https://127.0.0.1:${port}`, { ...credentials, rejectUnauthorized: false, minVersion: "TLSv1.3", ...(localAddress ? { localAddress } : {}) });
  session.on("error", () => undefined);
  // A refused client may see its session close before or instead of "connect".
  await new Promise<void>((resolve) => {
    session.once("connect", () => resolve());
    session.once("close", () => resolve());
  });
  return session;
}

export interface RawResponse {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

export function rawRequest(session: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: Buffer | string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const request = session.request(headers);
    let status = 0;
    let received: RawResponse["headers"] = {};
    const chunks: Buffer[] = [];
    request.on("response", (h) => {
      status = Number(h[":status"]);
      received = h;
    });
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => resolve({ status, body: Buffer.concat(chunks).toString(), headers: received }));
    request.on("error", reject);
    request.end(body);
  });
}

/** Resolves when the session closes, or after `ms`, with whether it closed. */
export async function closesWithin(session: ClientHttp2Session, ms: number): Promise<boolean> {
  if (session.closed || session.destroyed) return true;
  let timer: NodeJS.Timeout | undefined;
  const closed = await Promise.race([
    new Promise<boolean>((resolve) => session.once("close", () => resolve(true))),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
  ]);
  clearTimeout(timer);
  return closed;
}

/** HTTP/2 frame types and flags (RFC 9113 §6). */
export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7 } as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;

/** One HTTP/2 frame as bytes (RFC 9113 §4.1), for clients that write frames by hand as an attacker's would. */
export function http2Frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([header, payload]);
}
