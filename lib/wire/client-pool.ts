import http2, { ClientHttp2Session, ClientHttp2Stream, IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http2";
import type { Duplex, Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import tls, { type TLSSocket } from "node:tls";
import { Identity, verifiedPeer } from "../identity";
import { serverNameFor } from "./server-name";
import { SessionTickets, TicketProof } from "./session-tickets";
import { ChannelUnsupported, ClientChannel } from "./channel";
import { BatchItem, BatchOutcome, encodeBatch, MAX_BATCH_BODY_BYTES, MAX_BATCH_ITEMS } from "./batch";
import { WireError, wireErrorFromResponse } from "../protocol/errors";
import { ackFromResponse, destroyStream, errorFromResponse, readResponse, setIdleTimeout, ClientResponse } from "./http2-io";
import { decodePayload, encodePayload } from "./payload";
import { Ack, BATCH_CONTENT_TYPE, BATCH_PATH, CHANNEL_CONTENT_TYPE, CHANNEL_PATH, HEADER_MESSAGE_ID, HEADER_REPLY_WITHIN, MAX_MESSAGE_ID_CHARS, MAX_REPLY_WAIT_MS, MESSAGE_PATH, PAIRING_EXPORTER_LABEL, PAIRING_PATH, STREAM_PATH, topicPath } from "../protocol/wire";
import { CONNECTION_WINDOW_BYTES, FLOW_SETTINGS } from "./limits";
import { validateTopic } from "../protocol/topic";
import { newMessageId } from "./message-ids";

export interface PeerEndpoint {
  id: string;
  /** host:port, with IPv6 hosts in brackets ("[::1]:4000"); for other transports a name for messages. */
  address: string;
  /** A byte stream to the peer's wire, for transports that do not carry IP (BLE); TLS runs inside it. */
  dial?: () => Duplex;
  /** Longer than the pool's for slow transports (a first circuit to an onion service). */
  connectTimeoutMs?: number;
}

export interface ClientPoolOptions {
  /** A connection with no request for this long is closed. */
  idleMs?: number;
  connectTimeoutMs?: number;
  /** Another key answered at a peer's address (the dial fails with IDENTITY_MISMATCH either way). */
  onIdentityMismatch?(peer: PeerEndpoint, answeredBy: string): void;
  /** A dialled peer proved this key (DER SPKI) is its id's: private discovery's beacons need peers' keys. */
  onPeerKey?(peerId: string, spki: Buffer): void;
}

export interface SendOptions {
  timeoutMs?: number;
  /** Defaults to a random UUID; reuse it to retry, the receiver delivers a given id once. */
  id?: string;
}

export interface RequestOptions extends SendOptions {
  /** How long the receiving flow has to reply (the answer's wait, on top of timeoutMs for the connection). */
  replyWithinMs?: number;
}

/** A request's outcome: the ack (receivers, duplicate) and what the receiving flow replied. */
export interface Answer {
  ack: Ack;
  reply: unknown;
}

export const DEFAULT_REPLY_WITHIN_MS = 10_000;

export interface StreamOptions {
  /** The stream fails when no data moves for this long. */
  idleMs?: number;
  id?: string;
}

const DEFAULT_IDLE_MS = 60_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
const DEFAULT_SEND_TIMEOUT_MS = 10_000;
const DEFAULT_STREAM_IDLE_MS = 30_000;
/** How long a connection whose request went unanswered has to answer a PING before it counts as stalled. */
const LIVENESS_PING_MS = 10_000;

/** Requests in flight at once to one peer before further messages wait to go as a batch. */
const MAX_IN_FLIGHT = 4;
/** Larger messages always travel alone. */

export interface StreamedResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Readable;
}

interface Outgoing extends BatchItem {
  timeoutMs: number;
}

interface Queued extends Outgoing {
  resolve(ack: Ack): void;
  reject(err: unknown): void;
}

interface Lane {
  inFlight: number;
  queue: Queued[];
}

interface ChannelLane extends Lane {
  peer: PeerEndpoint;
  /** The setImmediate that sends what this turn queued. */
  flush?: NodeJS.Immediate;
}

/** Frames in flight at once on one peer's channel; further messages wait and leave together. */
const MAX_CHANNEL_FRAMES_IN_FLIGHT = 4;
/** A channel with nothing in flight ends after this (the listener would cut it at its 30 s stream timeout). */
const CHANNEL_IDLE_MS = 10_000;

/**
 * The id a flow gave (checked here: the listener refuses a whole batch that holds a bad one, so one bad
 * id would take the messages sent with it down too), or a new one.
 */
function messageId(given: string | undefined): string {
  if (given === undefined) return newMessageId();
  if (typeof given !== "string" || given.length === 0 || given.length > MAX_MESSAGE_ID_CHARS) throw new WireError("BAD_REQUEST", `a message id is 1 to ${MAX_MESSAGE_ID_CHARS} characters`);
  return given;
}

/** The first messages of a queue that fit one batch (one at least, however large). */
function takeBatch(queue: Queued[]): Queued[] {
  let bytes = 0;
  let count = 0;
  while (count < queue.length && count < MAX_BATCH_ITEMS && bytes + queue[count].body.length <= MAX_BATCH_BODY_BYTES) {
    bytes += queue[count].body.length;
    count += 1;
  }
  return queue.splice(0, Math.max(1, count));
}

function settleOutcome(item: Queued, outcome: BatchOutcome | undefined): void {
  if (outcome && "ack" in outcome) item.resolve(outcome.ack);
  else if (outcome) item.reject(wireErrorFromResponse(outcome.status, outcome.error, outcome.reason));
  else item.reject(new WireError("REMOTE_ERROR", "the peer's batch answer is missing this message"));
}

interface PooledSession {
  session: ClientHttp2Session;
  /** True once a request on it has completed: a later failure may mean the peer dropped an idle connection. */
  used: boolean;
  /** Why the peer sent GOAWAY, when it said (e.g. our certificate was refused). */
  refusal?: string;
}

/**
 * Outgoing connections: one HTTP/2 session per peer, opened on demand, shared by concurrent requests,
 * closed when idle and replaced when it fails. The server's certificate must carry the expected device id.
 */
export class ClientPool {
  private readonly sessions = new Map<string, Promise<PooledSession>>();
  private readonly lanes = new Map<string, Lane>();
  private readonly channelLanes = new Map<string, ChannelLane>();
  private readonly channels = new Map<string, { pooled: PooledSession; channel: ClientChannel }>();
  /** Peers that answered the channel with 404 (an earlier release): messages go as requests. */
  private readonly withoutChannel = new Set<string>();
  private readonly idleMs: number;
  private readonly connectTimeoutMs: number;
  private readonly tickets = new SessionTickets();
  private closed = false;

  constructor(private readonly identity: Identity, private readonly options: ClientPoolOptions = {}) {
    this.idleMs = options.idleMs ?? DEFAULT_IDLE_MS;
    this.connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    // Loading the key and certificate into OpenSSL takes over a millisecond: done now, not in the first
    // message's way (the identity keeps the context for every connection after).
    identity.tlsContext();
  }

  get connectionCount(): number {
    return this.sessions.size;
  }

  /**
   * Sends one message and resolves with the receiver's ack. Up to MAX_IN_FLIGHT requests run at once per
   * peer; messages arriving beyond that wait and leave together as one batch request when one returns, so
   * a burst costs a few requests instead of one each, and a lone message never waits.
   */
  async message(peer: PeerEndpoint, topic: string, payload: unknown, options: SendOptions = {}): Promise<Ack> {
    validateTopic(topic);
    const { body, contentType } = encodePayload(payload);
    const item: Outgoing = { id: messageId(options.id), topic, contentType, body, timeoutMs: options.timeoutMs ?? DEFAULT_SEND_TIMEOUT_MS };
    if (this.closed) throw new WireError("CLOSED", "the device is stopping");
    if (body.length <= MAX_BATCH_BODY_BYTES && !this.withoutChannel.has(peer.id)) return this.viaChannel(peer, item);
    return this.viaRequests(peer, item);
  }

  /** A request per message, batched behind MAX_IN_FLIGHT (peers without the message channel, and large messages). */
  private viaRequests(peer: PeerEndpoint, item: Outgoing): Promise<Ack> {
    const lane = this.lane(peer.id);
    if (lane.inFlight < MAX_IN_FLIGHT || item.body.length > MAX_BATCH_BODY_BYTES) return this.sendOne(peer, lane, item);
    return new Promise<Ack>((resolve, reject) => lane.queue.push({ ...item, resolve, reject }));
  }

  /**
   * Through the peer's message channel: messages sent in the same turn of the event loop leave together
   * as one frame (writes coalesced), up to MAX_CHANNEL_FRAMES_IN_FLIGHT frames at once.
   */
  private viaChannel(peer: PeerEndpoint, item: Outgoing): Promise<Ack> {
    let lane = this.channelLanes.get(peer.id);
    if (!lane) {
      lane = { inFlight: 0, queue: [], peer };
      this.channelLanes.set(peer.id, lane);
    }
    const queued = new Promise<Ack>((resolve, reject) => {
      const waiting = item as Queued;
      waiting.resolve = resolve;
      waiting.reject = reject;
      lane.queue.push(waiting);
    });
    // A lone message goes at once; messages behind it in this turn wait for the next, to leave as one frame.
    if (lane.inFlight === 0 && lane.queue.length === 1) this.flushChannel(lane);
    else if (!lane.flush) lane.flush = setImmediate(() => this.flushChannel(lane));
    return queued;
  }

  private flushChannel(lane: ChannelLane): void {
    lane.flush = undefined;
    while (lane.queue.length > 0 && lane.inFlight < MAX_CHANNEL_FRAMES_IN_FLIGHT) void this.sendFrame(lane, takeBatch(lane.queue));
    if (lane.inFlight === 0 && lane.queue.length === 0) this.channelLanes.delete(lane.peer.id);
  }

  /**
   * One frame and its outcomes. A channel that broke is opened anew and the frame sent once more (the
   * receiver drops message ids it has delivered); a peer without the channel gets the messages as requests.
   */
  private async sendFrame(lane: ChannelLane, batch: Queued[]): Promise<void> {
    const { peer } = lane;
    lane.inFlight += 1;
    const timeoutMs = Math.max(...batch.map((item) => item.timeoutMs));
    try {
      let outcomes: BatchOutcome[];
      for (let attempt = 1; ; attempt++) {
        const pooled = await this.session(peer);
        try {
          outcomes = await this.channelOn(peer, pooled).exchange(batch, timeoutMs);
          break;
        } catch (err) {
          if (err instanceof ChannelUnsupported) throw err;
          if (pooled.refusal) throw refused(peer, pooled.refusal);
          const stalled = await this.droppedIfStalled(peer.id, pooled, err, timeoutMs);
          // Sent once more only when the channel itself broke (or its connection stalled), never after a refusal.
          if (attempt > 1 || !(stalled || (err instanceof WireError && err.code === "UNREACHABLE"))) throw err;
        }
      }
      batch.forEach((item, i) => settleOutcome(item, outcomes[i]));
    } catch (err) {
      if (err instanceof ChannelUnsupported) {
        this.withoutChannel.add(peer.id);
        for (const item of batch) this.viaRequests(peer, item).then(item.resolve, item.reject);
      } else {
        const failure = this.describe(err, peer);
        for (const item of batch) item.reject(failure);
      }
    } finally {
      lane.inFlight -= 1;
      this.flushChannel(lane);
    }
  }

  /**
   * The peer's message channel on this connection: the open one, or a new one. Frames go out at once,
   * before the listener's answer to the channel itself: a first message costs no extra round trip.
   */
  private channelOn(peer: PeerEndpoint, pooled: PooledSession): ClientChannel {
    const held = this.channels.get(peer.id);
    if (held?.pooled === pooled && held.channel.open) return held.channel;
    const request = pooled.session.request({ ":method": "POST", ":path": CHANNEL_PATH, "content-type": CHANNEL_CONTENT_TYPE });
    const entry = {
      pooled,
      // Ended before the connection's own idle close: a connection is never closed (GOAWAY) under an open channel.
      channel: new ClientChannel(request, Math.min(CHANNEL_IDLE_MS, this.idleMs / 2), () => {
        if (this.channels.get(peer.id) === entry) this.channels.delete(peer.id);
      }),
    };
    this.channels.set(peer.id, entry);
    return entry.channel;
  }

  /**
   * Sends a message and waits for the receiving flow's reply. Never batched: it holds its request open
   * until the reply. Resent with the same id, it gets the same reply rather than being handled twice.
   */
  async ask(peer: PeerEndpoint, topic: string, payload: unknown, options: RequestOptions = {}): Promise<Answer> {
    validateTopic(topic);
    const replyWithinMs = options.replyWithinMs ?? DEFAULT_REPLY_WITHIN_MS;
    if (!Number.isInteger(replyWithinMs) || replyWithinMs < 1 || replyWithinMs > MAX_REPLY_WAIT_MS) throw new WireError("BAD_REQUEST", `the wait for a reply must be 1 to ${MAX_REPLY_WAIT_MS} ms`);
    const { body, contentType } = encodePayload(payload);
    const headers = {
      ":method": "POST",
      ":path": topicPath(MESSAGE_PATH, topic),
      "content-type": contentType,
      "content-length": body.length,
      [HEADER_MESSAGE_ID]: messageId(options.id),
      [HEADER_REPLY_WITHIN]: String(replyWithinMs),
    };
    const response = await this.post(peer, headers, body, (options.timeoutMs ?? DEFAULT_SEND_TIMEOUT_MS) + replyWithinMs);
    if (response.status !== 200) throw errorFromResponse(response);
    return { ack: ackFromResponse(response), reply: decodePayload(response.body, String(response.headers["content-type"] ?? "")) };
  }

  private lane(peerId: string): Lane {
    let lane = this.lanes.get(peerId);
    if (!lane) {
      lane = { inFlight: 0, queue: [] };
      this.lanes.set(peerId, lane);
    }
    return lane;
  }

  private async sendOne(peer: PeerEndpoint, lane: Lane, item: Outgoing): Promise<Ack> {
    lane.inFlight += 1;
    try {
      const headers = {
        ":method": "POST",
        ":path": topicPath(MESSAGE_PATH, item.topic),
        "content-type": item.contentType,
        "content-length": item.body.length,
        [HEADER_MESSAGE_ID]: item.id,
      };
      const response = await this.post(peer, headers, item.body, item.timeoutMs);
      if (response.status !== 200) throw errorFromResponse(response);
      return ackFromResponse(response);
    } finally {
      lane.inFlight -= 1;
      this.drain(peer, lane);
    }
  }

  private async sendBatch(peer: PeerEndpoint, lane: Lane, batch: Queued[]): Promise<void> {
    lane.inFlight += 1;
    try {
      const body = encodeBatch(batch);
      const headers = { ":method": "POST", ":path": BATCH_PATH, "content-type": BATCH_CONTENT_TYPE, "content-length": body.length };
      const response = await this.post(peer, headers, body, Math.max(...batch.map((item) => item.timeoutMs)));
      if (response.status !== 200) throw errorFromResponse(response);
      const outcomes = JSON.parse(response.body.toString("utf8")) as BatchOutcome[];
      batch.forEach((item, i) => settleOutcome(item, outcomes[i]));
    } catch (err) {
      for (const item of batch) item.reject(err);
    } finally {
      lane.inFlight -= 1;
      this.drain(peer, lane);
    }
  }

  /** Sends what queued up while requests were in flight; forgets an idle lane. */
  private drain(peer: PeerEndpoint, lane: Lane): void {
    while (lane.queue.length > 0 && lane.inFlight < MAX_IN_FLIGHT) {
      const batch = takeBatch(lane.queue);
      if (batch.length === 1) this.sendOne(peer, lane, batch[0]).then(batch[0].resolve, batch[0].reject);
      else void this.sendBatch(peer, lane, batch);
    }
    if (lane.inFlight === 0 && lane.queue.length === 0) this.lanes.delete(peer.id);
  }

  /** One request with its answer; a connection the peer had silently dropped is replaced once. */
  private async post(peer: PeerEndpoint, headers: OutgoingHttpHeaders, body: Buffer, timeoutMs: number): Promise<ClientResponse> {
    try {
      const pooled = await this.session(peer);
      try {
        return await this.exchange(pooled.session.request(headers), timeoutMs, body);
      } catch (err) {
        if (pooled.refusal) throw refused(peer, pooled.refusal);
        // Retrying is safe: the receiver drops message ids it has already delivered.
        if ((await this.droppedIfStalled(peer.id, pooled, err, timeoutMs)) || (pooled.used && !(err instanceof WireError))) {
          this.forget(peer.id, pooled);
          const fresh = await this.session(peer);
          return await this.exchange(fresh.session.request(headers), timeoutMs, body);
        }
        throw err;
      } finally {
        pooled.used = true;
      }
    } catch (err) {
      throw this.describe(err, peer);
    }
  }

  /** Sends a Readable as one stream; HTTP/2 flow control holds the source back when the peer is slower. */
  async stream(peer: PeerEndpoint, topic: string, body: Readable, options: StreamOptions = {}): Promise<Ack> {
    let id: string;
    try {
      validateTopic(topic);
      id = messageId(options.id);
    } catch (err) {
      body.destroy();
      throw err;
    }
    const pooled = await this.session(peer).catch((err: unknown) => {
      body.destroy();
      throw this.describe(err, peer);
    });
    const request = pooled.session.request({
      ":method": "POST",
      ":path": topicPath(STREAM_PATH, topic),
      "content-type": "application/octet-stream",
      [HEADER_MESSAGE_ID]: id,
    });
    const idleMs = options.idleMs ?? DEFAULT_STREAM_IDLE_MS;
    const response = readResponse(request);
    response.catch(() => undefined); // awaited below; this only keeps an early failure from going unhandled
    request.setTimeout(idleMs, () => destroyStream(request, new WireError("TIMEOUT", `the stream to ${peer.id} moved no data for ${idleMs} ms`)));
    try {
      await pipeline(body, request);
    } catch (err) {
      if (pooled.refusal) throw refused(peer, pooled.refusal);
      // pipeline() has destroyed the request, so the answer settles now: with the peer's reason if it sent one.
      const answer = await response.catch(() => undefined);
      if (answer && answer.status !== 200) throw errorFromResponse(answer);
      // A stream cannot be sent again (its body is read), but the connection it stalled on goes.
      await this.droppedIfStalled(peer.id, pooled, err, idleMs);
      if (err instanceof WireError) throw err;
      throw new WireError("STREAM_ABORTED", `the stream to ${peer.id} broke off: ${(err as Error).message}`);
    } finally {
      pooled.used = true;
    }
    const answer = await response.catch((err: unknown) => {
      throw pooled.refusal ? refused(peer, pooled.refusal) : this.describe(err, peer);
    });
    if (answer.status !== 200) throw errorFromResponse(answer);
    return ackFromResponse(answer);
  }

  /**
   * Asks a peer to pair. Returns its answer and this connection's TLS exporter bytes, from which both
   * ends derive the same short authentication string.
   */
  async pair(peer: PeerEndpoint, body: Buffer): Promise<{ response: ClientResponse; keyingMaterial: Buffer }> {
    try {
      const pooled = await this.session(peer);
      const keyingMaterial = (pooled.session.socket as TLSSocket).exportKeyingMaterial(32, PAIRING_EXPORTER_LABEL, Buffer.alloc(0));
      const headers = { ":method": "POST", ":path": PAIRING_PATH, "content-type": "application/json", "content-length": body.length };
      const response = await this.exchange(pooled.session.request(headers), DEFAULT_SEND_TIMEOUT_MS, body);
      return { response, keyingMaterial };
    } catch (err) {
      throw this.describe(err, peer);
    }
  }

  /**
   * Any request with its answer streamed (the CouchDB protocol of replication). A connection the peer had
   * silently dropped is replaced once; replication requests are safe to repeat.
   */
  async request(peer: PeerEndpoint, init: { method: string; path: string; headers?: OutgoingHttpHeaders; body?: Buffer; signal?: AbortSignal; timeoutMs?: number }): Promise<StreamedResponse> {
    const open = async (pooled: PooledSession): Promise<StreamedResponse> => {
      const request = pooled.session.request({ ...init.headers, ":method": init.method, ":path": init.path }, { signal: init.signal });
      const timeoutMs = init.timeoutMs ?? DEFAULT_SEND_TIMEOUT_MS;
      request.setTimeout(timeoutMs, () => destroyStream(request, new WireError("TIMEOUT", `no answer within ${timeoutMs} ms`)));
      request.end(init.body);
      return new Promise((resolve, reject) => {
        request.once("response", (headers) => {
          request.setTimeout(0);
          resolve({ status: Number(headers[":status"]), headers, body: request });
        });
        request.once("error", reject);
        request.once("close", () => reject(new WireError("UNREACHABLE", `${peer.address} closed the request without an answer`)));
      });
    };
    try {
      const pooled = await this.session(peer);
      try {
        return await open(pooled);
      } catch (err) {
        if (pooled.refusal) throw refused(peer, pooled.refusal);
        if (init.signal?.aborted) throw err;
        if ((await this.droppedIfStalled(peer.id, pooled, err, init.timeoutMs ?? DEFAULT_SEND_TIMEOUT_MS)) || (pooled.used && !(err instanceof WireError))) {
          this.forget(peer.id, pooled);
          return await open(await this.session(peer));
        }
        throw err;
      } finally {
        pooled.used = true;
      }
    } catch (err) {
      if ((err as Error)?.name === "AbortError") throw err;
      throw this.describe(err, peer);
    }
  }

  /** Closes every connection; requests under way fail with CLOSED. */
  close(): void {
    this.closed = true;
    for (const lane of [...this.lanes.values(), ...this.channelLanes.values()]) for (const item of lane.queue.splice(0)) item.reject(new WireError("CLOSED", "the device is stopping"));
    for (const lane of this.channelLanes.values()) clearImmediate(lane.flush);
    for (const held of this.channels.values()) held.channel.close();
    this.channels.clear();
    for (const entry of this.sessions.values()) entry.then((pooled) => pooled.session.destroy(), () => undefined);
    this.sessions.clear();
  }

  private exchange(request: ClientHttp2Stream, timeoutMs: number, body: Buffer): Promise<ClientResponse> {
    const response = readResponse(request);
    request.setTimeout(timeoutMs, () => destroyStream(request, new WireError("TIMEOUT", `no answer within ${timeoutMs} ms`)));
    request.end(body);
    return response;
  }

  private async session(peer: PeerEndpoint): Promise<PooledSession> {
    if (this.closed) throw new WireError("CLOSED", "the device is stopping");
    let entry = this.sessions.get(peer.id);
    if (!entry) {
      entry = this.connect(peer);
      this.sessions.set(peer.id, entry);
      entry.catch(() => this.sessions.delete(peer.id));
    }
    const pooled = await entry;
    // A link that dropped (a BLE pipe torn down) can leave a destroyed session here for a moment before
    // its "close" removes it: dial again rather than fail the request.
    if (pooled.session.destroyed || pooled.session.closed) {
      if (this.sessions.get(peer.id) === entry) this.sessions.delete(peer.id);
      return this.session(peer);
    }
    return pooled;
  }

  private connect(peer: PeerEndpoint): Promise<PooledSession> {
    return new Promise((resolve, reject) => {
      const tlsOptions = {
        secureContext: this.identity.tlsContext(),
        rejectUnauthorized: false, // self-signed by design; the device id is checked below
        checkServerIdentity: () => undefined,
        // What a private listener asks before it shows its certificate: proof that this side knows its id.
        servername: serverNameFor(peer.id),
        ALPNProtocols: ["h2"],
        minVersion: "TLSv1.3" as const,
      };
      const offered = this.tickets.take(peer.id);
      const dial = peer.dial;
      let socket: TLSSocket | undefined;
      // Tickets come after the handshake, often before "connect": kept once the peer's id is proven.
      let proof: TicketProof | undefined;
      const arrived: Buffer[] = [];
      const onTicket = (ticket: Buffer): void => {
        if (proof) this.tickets.remember(peer.id, ticket, proof);
        else arrived.push(ticket);
      };
      const session = http2.connect(`https://${dial ? "peer.invalid" : peer.address}`, {
        // No server push: a PUSH_PROMISE on a closing session would take the same path as a request
        // crossing a GOAWAY (see retireSession), and nothing here uses pushed streams.
        settings: { ...FLOW_SETTINGS, enablePush: false },
        createConnection: (authority: URL) => {
          const target = dial ? { socket: dial() } : { host: authority.hostname.replace(/^\[|\]$/g, ""), port: Number(authority.port || 443) };
          socket = tls.connect({ ...tlsOptions, ...target, session: offered?.ticket });
          socket.on("session", onTicket);
          return socket;
        },
      });
      const pooled: PooledSession = { session, used: false };
      const fail = (err: Error): void => {
        clearTimeout(timer);
        session.destroy();
        reject(pooled.refusal ? refused(peer, pooled.refusal) : err);
      };
      const connectTimeoutMs = peer.connectTimeoutMs ?? this.connectTimeoutMs;
      const timer = setTimeout(() => fail(new WireError("TIMEOUT", `no TLS connection within ${connectTimeoutMs} ms`)), connectTimeoutMs);
      session.on("goaway", (_code: number, _last: number, data?: Buffer) => {
        if (data && data.length > 0) pooled.refusal = data.toString("utf8");
        this.forget(peer.id, pooled);
      });
      session.once("error", fail);
      session.once("close", () => {
        this.forget(peer.id, pooled);
        fail(new WireError("UNREACHABLE", `${peer.address} closed the connection`));
      });
      session.once("connect", () => {
        clearTimeout(timer);
        let actualId: string;
        let shown: TicketProof;
        if (offered && socket?.isSessionReused()) {
          // Resumed: no certificate on this connection; the ticket stands for the one verified before.
          actualId = peer.id;
          shown = offered;
        } else {
          try {
            const certificate = (session.socket as TLSSocket).getPeerX509Certificate();
            const verified = verifiedPeer(certificate);
            actualId = verified.id;
            shown = { id: verified.id, spki: verified.spki, validToMs: Date.parse(certificate?.validTo ?? "") };
          } catch (err) {
            this.tickets.forget(peer.id);
            fail(new WireError("REFUSED", `the peer at ${peer.address}: ${(err as Error).message}`));
            return;
          }
        }
        if (actualId !== peer.id) {
          this.tickets.forget(peer.id);
          this.options.onIdentityMismatch?.(peer, actualId);
          fail(new WireError("IDENTITY_MISMATCH", `the device at ${peer.address} is ${actualId}, not ${peer.id}`));
          return;
        }
        this.options.onPeerKey?.(actualId, shown.spki);
        proof = shown;
        for (const ticket of arrived.splice(0)) this.tickets.remember(peer.id, ticket, proof);
        session.off("error", fail);
        session.on("error", () => this.forget(peer.id, pooled));
        // Answers (a replication pull, a channel's outcomes) come in at the connection's window.
        if (!session.destroyed) session.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
        // close(), not retireSession: the pool must see the session closed at once, or it would send more
        // requests after its own GOAWAY. (With push off, nothing can start a stream from the other side.)
        setIdleTimeout(session, this.idleMs, () => session.close());
        resolve(pooled);
      });
    });
  }

  /**
   * After a request went unanswered, asks the connection itself (an HTTP/2 PING). No pong either means
   * the path stalled, not the peer's flow: a TCP connection deep in retransmission backoff after heavy
   * loss can stay silent for minutes while a new one gets through at once (the netns 30 % loss test saw
   * a replication request wait 90 s). Such a connection is dropped, so that its other requests fail now
   * and the next ones dial afresh; true tells the caller to retry on a new connection.
   */
  private async droppedIfStalled(peerId: string, pooled: PooledSession, err: unknown, timeoutMs: number): Promise<boolean> {
    if (!(err instanceof WireError) || err.code !== "TIMEOUT" || pooled.session.destroyed) return false;
    const waitMs = Math.min(timeoutMs, LIVENESS_PING_MS);
    const answered = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), waitMs);
      const settle = (pong: boolean): void => {
        clearTimeout(timer);
        resolve(pong);
      };
      try {
        if (!pooled.session.ping((pingError) => settle(!pingError))) settle(false);
      } catch {
        settle(false); // destroyed meanwhile
      }
    });
    if (answered) return false;
    this.forget(peerId, pooled);
    pooled.session.destroy();
    return true;
  }

  private forget(peerId: string, pooled: PooledSession): void {
    const entry = this.sessions.get(peerId);
    if (!entry) return;
    entry.then((current) => {
      if (current === pooled && this.sessions.get(peerId) === entry) this.sessions.delete(peerId);
    }, () => undefined);
  }

  private describe(err: unknown, peer: PeerEndpoint): WireError {
    if (err instanceof WireError) return err;
    const code = (err as NodeJS.ErrnoException)?.code;
    const message = (err as Error)?.message ?? String(err);
    if (code === "ECONNREFUSED" || code === "EHOSTUNREACH" || code === "ENETUNREACH" || code === "ENOTFOUND" || code === "ECONNRESET") {
      return new WireError("UNREACHABLE", `${peer.id} at ${peer.address} is unreachable: ${message}`);
    }
    return new WireError("UNREACHABLE", `${peer.id} at ${peer.address}: ${message}`);
  }
}

function refused(peer: PeerEndpoint, reason: string): WireError {
  return new WireError("REFUSED", `${peer.id} refused the connection: ${reason}`);
}
