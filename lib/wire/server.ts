import { EventEmitter } from "node:events";
import http2, { Http2SecureServer, Http2Session, IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import type { AddressInfo } from "node:net";
import type { Readable } from "node:stream";
import type { TLSSocket } from "node:tls";
import { Identity, verifyPeerCertificate } from "../identity";
import { WireError } from "./errors";
import { readBody, respondAck, respondError } from "./http2-io";
import { DEFAULT_LIMITS, WireLimits } from "./limits";
import { decodePayload } from "./payload";
import { Ack, Authorizer, HEADER_MESSAGE_ID, MESSAGE_PATH, STREAM_PATH, topicFromPath } from "./protocol";
import { validateTopic } from "./topic";
import { RecentIds } from "./recent-ids";

export interface IncomingMessage {
  id: string;
  from: string;
  topic: string;
  payload: unknown;
  bytes: number;
}

export interface IncomingStream {
  id: string;
  from: string;
  topic: string;
  body: Readable;
}

/** Where accepted requests go; each returns how many receivers took the request. */
export interface Receiver {
  acceptMessage(message: IncomingMessage): Promise<number>;
  acceptStream(stream: IncomingStream): Promise<{ receivers: number; bytes: number }>;
}

export interface WireServerOptions {
  identity: Identity;
  host?: string;
  port?: number;
  authorize: Authorizer;
  receiver: Receiver;
  limits?: Partial<WireLimits>;
}

export interface WireServerEvents {
  refused: [info: { peerId?: string; reason: string }];
}

/**
 * The device's one mutual-TLS listener: HTTP/2 over TLS 1.3 with client certificates. The peer's device
 * id comes from its certificate; every request is authorised before it reaches a receiver.
 */
export class WireServer extends EventEmitter<WireServerEvents> {
  private readonly server: Http2SecureServer;
  private readonly peerIds = new WeakMap<Http2Session, string>();
  private readonly sessions = new Set<Http2Session>();
  private readonly seen: RecentIds;
  readonly limits: WireLimits;
  authorize: Authorizer;

  constructor(private readonly options: WireServerOptions) {
    super();
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.authorize = options.authorize;
    this.seen = new RecentIds(this.limits.rememberedMessageIds);
    this.server = http2.createSecureServer({
      key: options.identity.privateKeyPem,
      cert: options.identity.certificatePem,
      minVersion: "TLSv1.3",
      requestCert: true,
      // Self-signed certificates are the point: trust is decided by device id, not by a CA.
      rejectUnauthorized: false,
      settings: { maxConcurrentStreams: this.limits.maxConcurrentStreams, initialWindowSize: 1024 * 1024 },
    });
    this.server.maxConnections = this.limits.maxConnections;
    this.server.on("session", (session) => this.admit(session));
    this.server.on("stream", (stream, headers) => {
      stream.on("error", () => undefined); // a reset by the peer is reported through the request's outcome
      this.serve(stream, headers).catch((err: unknown) => respondError(stream, err));
    });
    this.server.on("tlsClientError", (err) => this.emit("refused", { reason: `TLS handshake failed: ${err.message}` }));
  }

  async listen(): Promise<AddressInfo> {
    const { host = "127.0.0.1", port = 0 } = this.options;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once("error", onError);
      this.server.listen(port, host, () => {
        this.server.off("error", onError);
        resolve();
      });
    });
    return this.address();
  }

  address(): AddressInfo {
    const address = this.server.address();
    if (!address || typeof address === "string") throw new Error("the wire server is not listening");
    return address;
  }

  get listening(): boolean {
    return this.server.listening;
  }

  get connectionCount(): number {
    return this.sessions.size;
  }

  /** Stops listening and drops every open connection so the port is free when this resolves. */
  async close(): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const session of this.sessions) session.destroy();
    await closed;
  }

  private admit(session: Http2Session): void {
    session.on("error", () => undefined); // a peer dropping its connection is not our failure
    try {
      const socket = session.socket as TLSSocket;
      const peerId = verifyPeerCertificate(socket.getPeerX509Certificate());
      this.peerIds.set(session, peerId);
      this.sessions.add(session);
      session.once("close", () => this.sessions.delete(session));
    } catch (err) {
      const reason = (err as Error).message;
      this.emit("refused", { reason });
      // The reason travels in GOAWAY's debug data so the refused peer can tell its user why.
      session.goaway(http2.constants.NGHTTP2_REFUSED_STREAM, 0, Buffer.from(reason));
      setImmediate(() => session.destroy());
    }
  }

  private async serve(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): Promise<void> {
    const peerId = this.peerIds.get(stream.session as Http2Session);
    if (!peerId) throw new WireError("REFUSED", "the connection has no verified device id");
    if (headers[":method"] !== "POST") throw new WireError("BAD_REQUEST", "only POST is served", 405);
    const path = (headers[":path"] ?? "").split("?")[0];
    const prefix = path.startsWith(MESSAGE_PATH) ? MESSAGE_PATH : path.startsWith(STREAM_PATH) ? STREAM_PATH : undefined;
    if (!prefix) throw new WireError("NOT_FOUND", `no route for ${path}`);
    let topic: string;
    try {
      topic = validateTopic(topicFromPath(prefix, path));
    } catch (err) {
      throw err instanceof WireError ? err : new WireError("BAD_REQUEST", "the topic in the path is not valid percent-encoding");
    }
    const id = headers[HEADER_MESSAGE_ID];
    if (typeof id !== "string" || id.length === 0 || id.length > 128) throw new WireError("BAD_REQUEST", `the ${HEADER_MESSAGE_ID} header is missing or too long`);
    const kind = prefix === MESSAGE_PATH ? "msg" : "stream";
    if (!(await this.authorize(peerId, "send", `${kind}/${topic}`))) {
      this.emit("refused", { peerId, reason: `not allowed to send to ${kind}/${topic}` });
      throw new WireError("REFUSED", `device ${peerId} is not allowed to send to ${kind}/${topic}`);
    }
    if (prefix === MESSAGE_PATH) await this.serveMessage(stream, headers, { id, from: peerId, topic });
    else await this.serveStream(stream, { id, from: peerId, topic });
  }

  private async serveMessage(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, meta: { id: string; from: string; topic: string }): Promise<void> {
    const declared = Number(headers["content-length"] ?? 0);
    if (declared > this.limits.maxMessageBytes) {
      throw new WireError("TOO_LARGE", `the message (${declared} bytes) is larger than the ${this.limits.maxMessageBytes} bytes this device accepts`);
    }
    const body = await readBody(stream, this.limits.maxMessageBytes);
    const payload = decodePayload(body, headers["content-type"]);
    const key = `${meta.from}/${meta.id}`;
    const ack: Ack = { id: meta.id, topic: meta.topic, receivers: 0, bytes: body.length };
    if (!this.seen.add(key)) {
      respondAck(stream, { ...ack, duplicate: true });
      return;
    }
    try {
      ack.receivers = await this.options.receiver.acceptMessage({ ...meta, payload, bytes: body.length });
    } catch (err) {
      this.seen.delete(key); // not delivered: a retry must be able to deliver it
      throw err;
    }
    respondAck(stream, ack);
  }

  private async serveStream(stream: ServerHttp2Stream, meta: { id: string; from: string; topic: string }): Promise<void> {
    stream.setTimeout(this.limits.streamIdleMs, () => {
      stream.destroy(new WireError("TIMEOUT", `the stream sent nothing for ${this.limits.streamIdleMs} ms`));
    });
    const result = await this.options.receiver.acceptStream({ ...meta, body: stream });
    const ack: Ack = { id: meta.id, topic: meta.topic, ...result };
    respondAck(stream, ack);
  }
}
