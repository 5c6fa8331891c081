import type { Duplex } from "node:stream";
import { EventEmitter } from "node:events";
import type { IncomingMessage as Http1Request, ServerResponse as Http1Response } from "node:http";
import http2, { Http2SecureServer, Http2Session, IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import type { AddressInfo } from "node:net";
import type { Readable } from "node:stream";
import type { SecureContext, TLSSocket } from "node:tls";
import { Identity, type RotationStatement, verifiedPeer, verifyPeerCertificate } from "../identity";
import { isServerNameFor } from "./server-name";
import { SESSION_TICKET_LIFETIME_S } from "./session-tickets";
import { WireError } from "../protocol/errors";
import { BatchItem, BatchOutcome, decodeBatch, MAX_BATCH_ITEMS, MAX_BATCH_REQUEST_BYTES } from "./batch";
import { BodyBudget } from "./body-budget";
import { destroyStream, markHeadRequest, readBody, respondAck, respondCouch, respondError, respondJson, respondReply, retireSession, setIdleTimeout } from "./http2-io";
import { ReplySlots, type Reply } from "./reply-slots";
import type { CouchReply, CouchRequest } from "../protocol/couch";
import { CONNECTION_WINDOW_BYTES, DEFAULT_LIMITS, FLOW_SETTINGS, WireLimits } from "./limits";
import { decodePayload } from "./payload";
import type { Socket } from "node:net";
import { serveChannel } from "./channel";
import { decodeItems } from "./channel-codec";
import { Ack, Authorizer, BATCH_PATH, onDecision, CHANNEL_PATH, type TopicAuthorizer, DatabaseTarget, databaseTarget, HEADER_MESSAGE_ID, HEADER_REPLY_WITHIN, MAX_MESSAGE_ID_CHARS, MAX_REPLY_WAIT_MS, MESSAGE_PATH, PAIRING_EXPORTER_LABEL, PAIRING_PATH, ROTATION_PATH, STREAM_PATH, topicFromPath, type Verb } from "../protocol/wire";
import { validateTopic } from "../protocol/topic";
import { RecentIds } from "./recent-ids";

export interface IncomingMessage {
  id: string;
  from: string;
  topic: string;
  payload: unknown;
  bytes: number;
  /** A request: its sender waits for one answer, given here (throws once answered or timed out). */
  reply?: (payload: unknown) => void;
  /** How long the sender waits for that answer. */
  replyWithinMs?: number;
}

export interface IncomingStream {
  id: string;
  from: string;
  topic: string;
  body: Readable;
}

export interface IncomingPairing {
  from: string;
  name?: string;
  /** TLS exporter bytes of this connection; the other end derives the same. */
  keyingMaterial: Buffer;
  /** Where the request came from (the remote IP address; absent over BLE): pending requests are limited per source. */
  address?: string;
}

/** Where accepted requests go; each returns how many receivers took the request. */
export interface Receiver {
  acceptMessage(message: IncomingMessage): Promise<number>;
  acceptStream(stream: IncomingStream): Promise<{ receivers: number; bytes: number }>;
  /** Records a pairing request and returns its id; absent: this device does not pair. */
  acceptPairing?(request: IncomingPairing): string;
  /** Answers a CouchDB-protocol request (replication); absent: this device serves no databases. */
  serveDatabase?(peerId: string, target: DatabaseTarget, request: CouchRequest): Promise<CouchReply>;
}

const MAX_PAIRING_BODY = 4096;
/** Request headers: a path, a few fields. Far below Node's defaults, which let one request hold much more. */
const MAX_HEADER_LIST_BYTES = 16 * 1024;
const MAX_HEADER_PAIRS = 64;
const MAX_PEER_RESETS_PER_SECOND = 100;
/** Stream ids remembered (streams are fewer than messages, each remembered for its repeats). */
const REMEMBERED_STREAM_IDS = 1_000;

export interface WireServerOptions {
  identity: Identity;
  host?: string;
  port?: number;
  authorize: Authorizer;
  /** The same decisions for message and stream topics, asked with the kind apart (left out: authorize gets `${kind}/${topic}`). */
  authorizeTopic?: TopicAuthorizer;
  /**
   * Whether some rule could let the peer do `verb` on a resource under `prefix` (any verb, any resource
   * when left out). Asked before a body is read and when a connection arrives, so that a device no rule
   * allows anything (a stranger) costs this device almost nothing. Absent: everyone may try.
   */
  permits?(peerId: string, verb?: Verb, prefix?: string): boolean;
  receiver: Receiver;
  limits?: Partial<WireLimits>;
  /** A connecting peer proved this key (DER SPKI) is its id's: private discovery's beacons need peers' keys. */
  onPeerKey?(peerId: string, spki: Buffer): void;
  /**
   * Serve the certificate only to clients that send this device's current server name (serverNameFor):
   * clients that know its id. Anyone else's handshake fails before a certificate is sent.
   */
  privateListener?: boolean;
  /** The statement that moved this device to its key, served at ROTATION_PATH to the peers that knew the old one. */
  rotation?: RotationStatement;
}

/** Why a request or connection was refused, as a label for counting (metrics): the reason says the rest. */
export type RefusalKind = "tls" | "certificate" | "unknown-key" | "strangers" | "connections" | "resets" | "acl" | "revoked" | "database";

export interface Refusal {
  peerId?: string;
  kind: RefusalKind;
  reason: string;
}

export interface WireServerEvents {
  refused: [info: Refusal];
  /** A message or stream accepted from a peer, with its body's size (metrics). */
  received: [info: { peerId: string; kind: "msg" | "stream"; bytes: number }];
}

/**
 * The device's one mutual-TLS listener: HTTP/2 over TLS 1.3 with client certificates. The peer's device
 * id comes from its certificate; every request is authorised before it reaches a receiver.
 */
export class WireServer extends EventEmitter<WireServerEvents> {
  private readonly server: Http2SecureServer;
  private readonly peerIds = new WeakMap<Http2Session, string>();
  private readonly sessions = new Set<Http2Session>();
  /** Sessions of devices no rule allows anything, by remote address. */
  private readonly strangers = new Map<string, Set<Http2Session>>();
  /** TCP connections by remote address, before TLS says who they are. */
  private readonly connectionsByAddress = new Map<string, number>();
  private readonly budget: BodyBudget;
  private readonly resets = new WeakMap<Http2Session, { since: number; count: number }>();
  private readonly seen: RecentIds;
  /** Ids of the streams each peer sent that reached the flow whole (a repeat is drained and acked as a duplicate). */
  private readonly streamsDone = new RecentIds(REMEMBERED_STREAM_IDS);
  /** Streams being received, by sender and id: a repeat that arrives meanwhile waits for the outcome. */
  private readonly streamsUnderWay = new Map<string, Promise<unknown>>();
  private readonly replies = new ReplySlots();
  /** Incoming streams in progress, so that a revoked permission can end them. */
  private readonly openStreams = new Set<{ peerId: string; resource: string; stream: ServerHttp2Stream }>();
  readonly limits: WireLimits;
  readonly authorize: Authorizer;
  /** The option's, or authorize asked with kind and topic joined. */
  private readonly authorizeTopic: TopicAuthorizer;

  constructor(private readonly options: WireServerOptions) {
    super();
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.authorize = options.authorize;
    this.authorizeTopic = options.authorizeTopic ?? ((peerId, verb, kind, topic) => options.authorize(peerId, verb, `${kind}/${topic}`));
    this.seen = new RecentIds(this.limits.rememberedMessageIds);
    this.budget = new BodyBudget(this.limits.maxPendingBytesPerPeer, this.limits.maxPendingBytes);
    const selfId = options.identity.deviceId;
    this.server = http2.createSecureServer({
      // A private listener has no default certificate: a client sending no server name gets none either.
      ...(options.privateListener
        ? { SNICallback: (servername: string, done: (err: Error | null, context?: SecureContext) => void) => (isServerNameFor(selfId, servername) ? done(null, options.identity.tlsContext()) : done(new Error("no such server name"))) }
        : { key: options.identity.privateKeyPem, cert: options.identity.certificatePem }),
      minVersion: "TLSv1.3",
      // Tickets let a known peer's next connection resume (see session-tickets.ts); the client's
      // certificate is in the ticket, so admit() checks it on a resumed connection as on a new one.
      sessionTimeout: SESSION_TICKET_LIFETIME_S,
      requestCert: true,
      // Self-signed certificates are the point: trust is decided by device id, not by a CA.
      rejectUnauthorized: false,
      // CouchDB-protocol clients (CouchDB's replicator, PouchDB on node-fetch) speak HTTP/1.1; they may reach the databases.
      allowHTTP1: true,
      handshakeTimeout: this.limits.handshakeTimeoutMs,
      settings: { maxConcurrentStreams: this.limits.maxConcurrentStreams, maxHeaderListSize: MAX_HEADER_LIST_BYTES, ...FLOW_SETTINGS },
      maxHeaderListPairs: MAX_HEADER_PAIRS,
      // Node's own guards against SETTINGS, PING and RST floods (CVE-2019-9512/9515, 2023-44487), stated here so they are reviewed.
      maxSettings: 32,
      maxOutstandingPings: 10,
      maxSessionInvalidFrames: 100,
      maxSessionRejectedStreams: 100,
    });
    this.server.maxConnections = this.limits.maxConnections;
    this.server.on("connection", (socket: Socket) => this.countConnection(socket));
    this.server.on("session", (session) => this.admit(session));
    this.server.on("stream", (stream, headers) => {
      stream.on("error", () => undefined); // a reset by the peer is reported through the request's outcome
      // Every request, not only streams: one that stops sending (or reading) holds a slot and memory.
      stream.setTimeout(this.limits.streamIdleMs, () => destroyStream(stream, new WireError("TIMEOUT", `the request was idle for ${this.limits.streamIdleMs} ms`)));
      // A reset from the peer before the answer: CANCEL (what clients send) or REFUSED_STREAM.
      const session = stream.session; // gone from the stream once it closes
      stream.once("close", () => {
        if (stream.rstCode === http2.constants.NGHTTP2_CANCEL || stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) this.countReset(session);
      });
      if (headers[":method"] === "HEAD") markHeadRequest(stream);
      this.serve(stream, headers).catch((err: unknown) => respondError(stream, err));
    });
    // HTTP/1.1 requests only: without this, adding a "request" listener would also wrap every HTTP/2
    // stream in Node's compatibility objects, which read (and pause) the streams served above.
    this.server.removeAllListeners("newListener");
    this.server.on("request", (request: Http1Request, response: Http1Response) => void this.serveHttp1(request, response));
    this.server.on("tlsClientError", (err) => this.emit("refused", { kind: "tls", reason: `TLS handshake failed: ${err.message}` }));
  }

  /** A connection that arrived another way than TCP (a BLE pipe): the same TLS handshake and checks. */
  accept(socket: Duplex): void {
    this.server.emit("connection", socket);
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

  /**
   * Asks the authorizer again about every stream in progress and ends the ones it now refuses; the
   * sender gets REFUSED. Called when the rules or groups change. Resolves with how many were ended.
   */
  async reauthorize(): Promise<number> {
    let ended = 0;
    for (const open of [...this.openStreams]) {
      if (await this.authorize(open.peerId, "send", open.resource)) continue;
      ended++;
      this.openStreams.delete(open);
      this.emit("refused", { peerId: open.peerId, kind: "revoked", reason: `permission for ${open.resource} revoked` });
      const revoked = new WireError("REFUSED", `device ${open.peerId} is no longer allowed to send to ${open.resource}`);
      respondError(open.stream, revoked);
      // The local reader learns it too, rather than waiting for an end that will not come.
      destroyStream(open.stream, revoked);
    }
    return ended;
  }

  /**
   * Requests the peer opened and reset before they were answered, per connection and second. A few are
   * a client giving up; thousands are the rapid-reset attack (CVE-2023-44487), which costs this device a
   * handler per request while costing the peer two frames: the connection is closed.
   */
  private countReset(session: Http2Session | undefined): void {
    if (!session || session.destroyed) return;
    const now = Date.now();
    const window = this.resets.get(session);
    if (!window || now - window.since >= 1_000) {
      this.resets.set(session, { since: now, count: 1 });
      return;
    }
    if (++window.count <= MAX_PEER_RESETS_PER_SECOND) return;
    this.emit("refused", { peerId: this.peerIds.get(session), kind: "resets", reason: `more than ${MAX_PEER_RESETS_PER_SECOND} requests reset by the peer in a second` });
    session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    setImmediate(() => session.destroy());
  }

  /** TCP connections per address are capped before the handshake, so one address cannot take every slot. */
  private countConnection(socket: Socket): void {
    const address = socket.remoteAddress;
    if (!address) return; // a pipe from another transport (BLE): that transport limits its own links
    const count = (this.connectionsByAddress.get(address) ?? 0) + 1;
    if (count > this.limits.maxConnectionsPerAddress) {
      this.emit("refused", { kind: "connections", reason: `more than ${this.limits.maxConnectionsPerAddress} connections from ${address}` });
      socket.destroy();
      return;
    }
    this.connectionsByAddress.set(address, count);
    socket.once("close", () => {
      const left = (this.connectionsByAddress.get(address) ?? 1) - 1;
      if (left > 0) this.connectionsByAddress.set(address, left);
      else this.connectionsByAddress.delete(address);
    });
  }

  private admit(session: Http2Session): void {
    session.on("error", () => undefined); // a peer dropping its connection is not our failure
    // A peer's GOAWAY makes Node close the session (session.close()), and a request the peer sends after
    // it would then be refused from inside nghttp2's HEADERS callback: Node 20's use-after-free (see
    // retireSession), which any client could aim at this device. Ended here first, the session reads no
    // more. A peer says GOAWAY once it has nothing more to ask (this project's clients: when idle).
    session.once("goaway", () => session.destroy());
    let peerId: string;
    try {
      const peer = verifiedPeer((session.socket as TLSSocket).getPeerX509Certificate());
      peerId = peer.id;
      this.options.onPeerKey?.(peerId, peer.spki);
    } catch (err) {
      this.turnAway(session, "certificate", (err as Error).message);
      return;
    }
    const stranger = !this.mayTry(peerId);
    if (stranger && !this.admitStranger(session)) {
      this.turnAway(session, "strangers", "too many connections from devices this device does not know; try again later", peerId);
      return;
    }
    // A stranger keeps the 64 KiB default: it may hold only that much unread on this device.
    if (!stranger && !session.destroyed) session.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
    this.peerIds.set(session, peerId);
    this.sessions.add(session);
    session.once("close", () => this.sessions.delete(session));
    // Idle connections are closed: a known peer's after its own client would have closed it, a stranger's within seconds.
    setIdleTimeout(session, stranger ? this.limits.strangerSessionMs : this.limits.idleSessionMs, () => retireSession(session));
  }

  /** Strangers share a few slots, a few per address; known peers never compete with them for more. */
  private admitStranger(session: Http2Session): boolean {
    const address = session.socket?.remoteAddress ?? "";
    let total = 0;
    for (const set of this.strangers.values()) total += set.size;
    const mine = this.strangers.get(address);
    if (total >= this.limits.maxStrangerSessions || (mine?.size ?? 0) >= this.limits.maxStrangerSessionsPerAddress) return false;
    const set = mine ?? new Set<Http2Session>();
    this.strangers.set(address, set.add(session));
    session.once("close", () => {
      set.delete(session);
      if (set.size === 0 && this.strangers.get(address) === set) this.strangers.delete(address);
    });
    return true;
  }

  /** Refuses a connection with the reason in GOAWAY's debug data, so the refused peer can tell its user why. */
  private turnAway(session: Http2Session, kind: RefusalKind, reason: string, peerId?: string): void {
    this.emit("refused", { peerId, kind, reason });
    session.goaway(http2.constants.NGHTTP2_REFUSED_STREAM, 0, Buffer.from(reason));
    setImmediate(() => session.destroy());
  }

  private mayTry(peerId: string, verb?: Verb, prefix?: string): boolean {
    return this.options.permits ? this.options.permits(peerId, verb, prefix) : true;
  }

  /** Reads a request body within the limit and the memory budget; the bytes count until the request is over. */
  private readBodyOf(stream: ServerHttp2Stream, peerId: string, limit: number): Promise<Buffer> {
    let held = 0;
    stream.once("close", () => this.budget.release(peerId, held));
    return readBody(stream, limit, (bytes) => {
      this.budget.take(peerId, bytes);
      held += bytes;
    });
  }

  /** Bytes of request bodies held now, and by how many peers (for tests and the load figures). */
  get pendingBodies(): { bytes: number; peers: number } {
    return { bytes: this.budget.bytesHeld, peers: this.budget.peersHolding };
  }

  private async serve(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): Promise<void> {
    const peerId = this.peerIds.get(stream.session as Http2Session);
    if (!peerId) throw new WireError("REFUSED", "the connection has no verified device id");
    const [path, query = ""] = (headers[":path"] ?? "").split("?");
    // Public and proved by both keys: the peers that knew the old key may not know this one yet.
    if (path === ROTATION_PATH && headers[":method"] === "GET") {
      if (!this.options.rotation) throw new WireError("NOT_FOUND", "this device never moved to a new key");
      return respondJson(stream, this.options.rotation);
    }
    // A device no rule allows anything learns nothing here, not even which routes or databases exist.
    if (path !== PAIRING_PATH && !this.mayTry(peerId)) {
      this.emit("refused", { peerId, kind: "unknown-key", reason: `unknown key: ${headers[":method"]} ${path.slice(0, 80)}` });
      throw new WireError("REFUSED", `this device does not accept the key ${peerId}`);
    }
    const database = parseDatabaseTarget(path);
    if (database) {
      const reply = await this.serveDatabase(peerId, database, couchRequest(String(headers[":method"]), database, query, (limit) => this.readBodyOf(stream, peerId, limit), stream, this.limits.streamIdleMs));
      return respondCouch(stream, reply);
    }
    if (headers[":method"] !== "POST") throw new WireError("BAD_REQUEST", "only POST is served", 405);
    if (path === BATCH_PATH) return this.serveBatch(stream, peerId);
    if (path === CHANNEL_PATH) return this.serveChannel(stream, peerId);
    if (path === PAIRING_PATH) return this.servePairing(stream, peerId);
    const prefix = path.startsWith(MESSAGE_PATH) ? MESSAGE_PATH : path.startsWith(STREAM_PATH) ? STREAM_PATH : undefined;
    if (!prefix) throw new WireError("NOT_FOUND", `no route for ${path}`);
    let topic: string;
    try {
      topic = validateTopic(topicFromPath(prefix, path));
    } catch (err) {
      throw err instanceof WireError ? err : new WireError("BAD_REQUEST", "the topic in the path is not valid percent-encoding");
    }
    const id = headers[HEADER_MESSAGE_ID];
    if (typeof id !== "string" || id.length === 0 || id.length > MAX_MESSAGE_ID_CHARS) throw new WireError("BAD_REQUEST", `the ${HEADER_MESSAGE_ID} header is missing or too long`);
    if (prefix === STREAM_PATH) {
      await this.ensureAllowed(peerId, "stream", topic);
      return this.serveStream(stream, { id, from: peerId, topic });
    }
    await this.ensureAllowed(peerId, "msg", topic);
    const declared = Number(headers["content-length"] ?? 0);
    if (declared > this.limits.maxMessageBytes) {
      throw new WireError("TOO_LARGE", `the message (${declared} bytes) is larger than the ${this.limits.maxMessageBytes} bytes this device accepts`);
    }
    const replyWithinMs = replyWait(headers[HEADER_REPLY_WITHIN]);
    const body = await this.readBodyOf(stream, peerId, this.limits.maxMessageBytes);
    const item = { id, topic, contentType: String(headers["content-type"] ?? ""), body };
    if (replyWithinMs === undefined) return respondAck(stream, await this.deliver(peerId, item));
    // The request is quiet while its flow works on the answer: not idle in the sense of the stream timeout.
    stream.setTimeout(replyWithinMs + this.limits.streamIdleMs);
    const { ack, reply } = await this.deliverRequest(peerId, item, replyWithinMs);
    respondReply(stream, ack, reply);
  }

  private async serveDatabase(peerId: string, target: DatabaseTarget, request: CouchRequest): Promise<CouchReply> {
    if (!this.options.receiver.serveDatabase) throw new WireError("NOT_FOUND", "this device serves no databases");
    const reply = await this.options.receiver.serveDatabase(peerId, target, request);
    if (reply.status === 403) this.emit("refused", { peerId, kind: "database", reason: `database request ${request.method} ${target.kind === "db" ? `db/${target.name}` : target.kind} refused` });
    return reply;
  }

  /** HTTP/1.1 reaches the databases only; messages and streams need HTTP/2's flow control and acks. */
  private async serveHttp1(request: Http1Request, response: Http1Response): Promise<void> {
    const reply = (status: number, code: string, reason: string): void => {
      response.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify({ error: code, reason }));
    };
    let peerId: string;
    try {
      peerId = verifyPeerCertificate((request.socket as TLSSocket).getPeerX509Certificate());
    } catch (err) {
      this.emit("refused", { kind: "certificate", reason: (err as Error).message });
      return reply(403, "forbidden", (err as Error).message);
    }
    if (!this.mayTry(peerId)) {
      this.emit("refused", { peerId, kind: "unknown-key", reason: `unknown key: ${request.method} ${(request.url ?? "/").slice(0, 80)}` });
      return reply(403, "forbidden", `this device does not accept the key ${peerId}`);
    }
    const [path, query = ""] = (request.url ?? "/").split("?");
    let database: DatabaseTarget | undefined;
    try {
      database = parseDatabaseTarget(path);
    } catch (err) {
      return reply(400, "bad_request", (err as Error).message);
    }
    if (!database) return reply(505, "http_version", "messages and streams need HTTP/2; HTTP/1.1 reaches /db/ and /mesh only");
    try {
      const answer = await this.serveDatabase(peerId, database, couchRequest(request.method ?? "GET", database, query, (limit) => readHttp1Body(request, limit), response));
      if ("binary" in answer) response.writeHead(answer.status, { "content-type": answer.contentType }).end(answer.binary);
      else response.writeHead(answer.status, { "content-type": "application/json" }).end(JSON.stringify(answer.json));
    } catch (err) {
      const failure = err instanceof WireError ? err : new WireError("REMOTE_ERROR", String((err as Error)?.message ?? err));
      if (!response.headersSent) reply(failure.httpStatus, failure.code.toLowerCase(), failure.message);
      else response.destroy(); // HTTP/1.1: no nghttp2 under it
    }
  }

  /** A pairing request; allowed without a rule, since it only asks the users to confirm. */
  private async servePairing(stream: ServerHttp2Stream, peerId: string): Promise<void> {
    const accept = this.options.receiver.acceptPairing?.bind(this.options.receiver);
    if (!accept) throw new WireError("NOT_FOUND", "this device does not take pairing requests");
    let name: string | undefined;
    try {
      const body = JSON.parse((await this.readBodyOf(stream, peerId, MAX_PAIRING_BODY)).toString("utf8") || "{}") as { name?: unknown };
      name = typeof body.name === "string" ? body.name.slice(0, 64) : undefined;
    } catch (err) {
      throw err instanceof WireError ? err : new WireError("BAD_REQUEST", "the pairing request is not JSON");
    }
    const keyingMaterial = (stream.session?.socket as TLSSocket).exportKeyingMaterial(32, PAIRING_EXPORTER_LABEL, Buffer.alloc(0));
    const address = (stream.session?.socket as TLSSocket | undefined)?.remoteAddress;
    respondJson(stream, { requestId: accept({ from: peerId, name, keyingMaterial, address }) });
  }

  /** Messages that queued up at the sender, delivered in order, each with its own outcome. */
  private async serveBatch(stream: ServerHttp2Stream, peerId: string): Promise<void> {
    this.ensureMaySendMessages(peerId);
    const items = decodeBatch(await this.readBodyOf(stream, peerId, MAX_BATCH_REQUEST_BYTES), MAX_BATCH_ITEMS);
    const { outcomes } = await this.startBatch(peerId, items);
    respondJson(stream, await outcomes);
  }

  /**
   * Hands a batch's messages to the flows in order (each checked against the ACL), and returns once all
   * are handed over; their receipts (a turn of Node-RED's delivery each) are awaited together in
   * `outcomes`. (Wrapped, so that the caller can start the next batch before these settle.)
   */
  private async startBatch(peerId: string, items: BatchItem[]): Promise<{ outcomes: Promise<BatchOutcome[]> }> {
    const outcomes: Array<Promise<BatchOutcome>> = [];
    for (const item of items) {
      try {
        validateTopic(item.topic);
        const decided = this.ensureAllowed(peerId, "msg", item.topic);
        if (decided) await decided;
        // The limit a single request is held to (a batch item is no way around it).
        if (item.body.length > this.limits.maxMessageBytes) throw new WireError("TOO_LARGE", `the message (${item.body.length} bytes) is larger than the ${this.limits.maxMessageBytes} bytes this device accepts`);
        outcomes.push(this.deliver(peerId, item).then((ack) => ({ ack }), batchFailure));
      } catch (err) {
        outcomes.push(Promise.resolve(batchFailure(err)));
      }
    }
    return { outcomes: Promise.all(outcomes) };
  }

  /**
   * The message channel: batches as frames on one long-lived stream (lib/wire/channel.ts), each handled
   * as a /batch request is. It carries on while the peer sends; an idle one is closed by the stream timeout.
   */
  private async serveChannel(stream: ServerHttp2Stream, peerId: string): Promise<void> {
    this.ensureMaySendMessages(peerId);
    await serveChannel(stream, {
      handle: (body) => this.startBatch(peerId, decodeItems(body, MAX_BATCH_ITEMS)),
      charge: (bytes) => this.budget.take(peerId, bytes),
      release: (bytes) => this.budget.release(peerId, bytes),
    });
  }

  /** Refused before a byte of a batch or a channel is read: a peer that may send no message at all gets nothing held for it. */
  private ensureMaySendMessages(peerId: string): void {
    if (this.mayTry(peerId, "send", "msg/")) return;
    this.emit("refused", { peerId, kind: "acl", reason: "not allowed to send messages" });
    throw new WireError("REFUSED", `device ${peerId} is not allowed to send messages here`);
  }

  /** Throws when the ACL refuses; synchronously when it decides synchronously (onDecision), so a batch's messages are not awaited one by one. */
  private ensureAllowed(peerId: string, kind: "msg" | "stream", topic: string): void | Promise<void> {
    return onDecision(this.authorizeTopic(peerId, "send", kind, topic), (allowed) => {
      if (allowed) return;
      this.emit("refused", { peerId, kind: "acl", reason: `not allowed to send to ${kind}/${topic}` });
      throw new WireError("REFUSED", `device ${peerId} is not allowed to send to ${kind}/${topic}`);
    });
  }

  /** Hands one message to the receiver once per id; a failed delivery forgets the id so a retry can succeed. */
  private async deliver(from: string, item: BatchItem): Promise<Ack> {
    const payload = decodePayload(item.body, item.contentType);
    const ack: Ack = { id: item.id, topic: item.topic, receivers: 0, bytes: item.body.length };
    if (!this.seen.add(from, item.id)) return { ...ack, duplicate: true };
    try {
      ack.receivers = await this.options.receiver.acceptMessage({ id: item.id, from, topic: item.topic, payload, bytes: item.body.length });
    } catch (err) {
      this.seen.delete(from, item.id);
      throw err;
    }
    this.emit("received", { peerId: from, kind: "msg", bytes: item.body.length });
    return ack;
  }

  /**
   * Hands a request to the receiver with a way to answer it, then waits for the answer. A repeat of a
   * request still waiting or answered within the last minute gets the same answer (duplicate: true),
   * and the flow does not see it twice.
   */
  private async deliverRequest(from: string, item: BatchItem, withinMs: number): Promise<{ ack: Ack; reply: Reply }> {
    const ack: Ack = { id: item.id, topic: item.topic, receivers: 0, bytes: item.body.length };
    const key = `${from}/${item.id}`;
    const { slot, fresh } = this.replies.open(key, withinMs);
    if (!fresh) return { ack: { ...ack, duplicate: true }, reply: await slot.reply };
    const payload = decodePayload(item.body, item.contentType);
    try {
      ack.receivers = await this.options.receiver.acceptMessage({ id: item.id, from, topic: item.topic, payload, bytes: item.body.length, reply: (answer) => slot.answer(answer), replyWithinMs: withinMs });
    } catch (err) {
      this.replies.forget(key);
      throw err;
    }
    this.emit("received", { peerId: from, kind: "msg", bytes: item.body.length });
    return { ack, reply: await slot.reply };
  }

  private async serveStream(stream: ServerHttp2Stream, meta: { id: string; from: string; topic: string }): Promise<void> {
    stream.setTimeout(this.limits.streamIdleMs, () => {
      destroyStream(stream, new WireError("TIMEOUT", `the stream sent nothing for ${this.limits.streamIdleMs} ms`));
    });
    // A sender whose ack was lost sends the stream again under its id: the flow has it once. A repeat
    // that comes while the first is still being received waits for it to end, whole or not.
    const key = `${meta.from}\u0000${meta.id}`;
    for (let earlier = this.streamsUnderWay.get(key); earlier; earlier = this.streamsUnderWay.get(key)) await earlier.catch(() => undefined);
    if (this.streamsDone.has(meta.from, meta.id)) {
      let bytes = 0;
      for await (const chunk of stream) bytes += (chunk as Buffer).length;
      respondAck(stream, { id: meta.id, topic: meta.topic, receivers: 0, bytes, duplicate: true });
      return;
    }
    const receiving = this.receiveStream(stream, meta);
    this.streamsUnderWay.set(key, receiving);
    try {
      await receiving;
      this.streamsDone.add(meta.from, meta.id);
    } finally {
      this.streamsUnderWay.delete(key);
    }
  }

  private async receiveStream(stream: ServerHttp2Stream, meta: { id: string; from: string; topic: string }): Promise<void> {
    const open = { peerId: meta.from, resource: `stream/${meta.topic}`, stream };
    this.openStreams.add(open);
    try {
      const result = await this.options.receiver.acceptStream({ ...meta, body: stream });
      this.emit("received", { peerId: meta.from, kind: "stream", bytes: result.bytes });
      const ack: Ack = { id: meta.id, topic: meta.topic, ...result };
      respondAck(stream, ack);
    } finally {
      this.openStreams.delete(open);
    }
  }
}

function batchFailure(err: unknown): BatchOutcome {
  const failure = err instanceof WireError ? err : new WireError("REMOTE_ERROR", (err as Error)?.message ?? String(err));
  return { error: failure.code, reason: failure.message, status: failure.httpStatus };
}

/** The same CouchDB request from either protocol; `closing` (the stream or response) aborts a long poll when the client goes. */
function couchRequest(method: string, target: DatabaseTarget, query: string, readBody: (limit: number) => Promise<Buffer>, closing: { once(event: "close", listener: () => void): unknown; setTimeout?(ms: number, callback?: () => void): unknown }, idleMs?: number): CouchRequest {
  const closed = new AbortController();
  closing.once("close", () => closed.abort());
  const request: CouchRequest = { method, segments: "segments" in target ? target.segments : [], query: new URLSearchParams(query), readBody, signal: closed.signal };
  // A long poll is idle by design: the idle timeout rests while it waits, and is back for the answer.
  const idle = closing.setTimeout?.bind(closing);
  if (idle && idleMs) {
    request.waiting = () => {
      idle(0);
      return () => idle(idleMs, () => (closing as unknown as { destroy(): void }).destroy());
    };
  }
  return request;
}

function parseDatabaseTarget(path: string): DatabaseTarget | undefined {
  try {
    return databaseTarget(path);
  } catch {
    throw new WireError("BAD_REQUEST", "the path is not valid percent-encoding");
  }
}

function readHttp1Body(request: Http1Request, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new WireError("TOO_LARGE", `the request is larger than the ${limit} bytes this device accepts`));
        request.destroy(); // HTTP/1.1: no nghttp2 under it
      } else chunks.push(chunk);
    });
    request.once("end", () => resolve(Buffer.concat(chunks)));
    request.once("error", (err) => reject(new WireError("STREAM_ABORTED", err.message)));
  });
}

/** The sender's wait for a reply, from its header: absent for a plain message. */
function replyWait(header: string | string[] | undefined): number | undefined {
  if (header === undefined) return undefined;
  const ms = Number(header);
  if (!Number.isInteger(ms) || ms < 1 || ms > MAX_REPLY_WAIT_MS) throw new WireError("BAD_REQUEST", `${HEADER_REPLY_WITHIN} must be a whole number of milliseconds from 1 to ${MAX_REPLY_WAIT_MS}`);
  return ms;
}
