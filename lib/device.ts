import { EventEmitter, once } from "node:events";
import { PassThrough, Readable, Transform } from "node:stream";
import { KnownPeer, PeerDirectory } from "./discovery/peer-directory";
import { Identity } from "./identity";
import { ClientPool, SendOptions, StreamOptions } from "./wire/client-pool";
import { WireError } from "./wire/errors";
import type { WireLimits } from "./wire/limits";
import type { Ack, Authorizer } from "./wire/protocol";
import { IncomingMessage, IncomingStream, Receiver, WireServer } from "./wire/server";
import { TopicSubscriptions } from "./wire/subscriptions";

export interface DeviceOptions {
  identity: Identity;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  peers?: KnownPeer[];
  /** Replaces the default rule "known peers may do anything, unknown keys nothing". */
  authorize?: Authorizer;
  limits?: Partial<WireLimits>;
  idleConnectionMs?: number;
}

export interface PeerRef {
  id: string;
  name?: string;
}

export interface ReceivedMessage {
  id: string;
  from: PeerRef;
  topic: string;
  payload: unknown;
  bytes: number;
}

export interface ReceivedStream {
  id: string;
  from: PeerRef;
  topic: string;
  body: Readable;
}

export type MessageListener = (message: ReceivedMessage) => void | Promise<void>;
/** Resolves once it has read the whole body (or rejects); the sender's ack waits for it. */
export type StreamListener = (stream: ReceivedStream) => Promise<void>;

export interface DeviceEvents {
  refused: [info: { peerId?: string; reason: string }];
}

/**
 * One device on the mesh: its identity, its listener, its outgoing connections and the receivers that
 * flows registered. This is what a Node-RED identity-config node holds; it has no Node-RED dependency.
 */
export class Device extends EventEmitter<DeviceEvents> implements Receiver {
  readonly identity: Identity;
  readonly peers: PeerDirectory;
  private readonly server: WireServer;
  private readonly pool: ClientPool;
  private readonly messageListeners = new TopicSubscriptions<MessageListener>();
  private readonly streamListeners = new TopicSubscriptions<StreamListener>();
  private started?: Promise<number>;

  constructor(options: DeviceOptions) {
    super();
    this.identity = options.identity;
    this.peers = new PeerDirectory(options.peers);
    this.server = new WireServer({
      identity: options.identity,
      host: options.host,
      port: options.port,
      limits: options.limits,
      authorize: options.authorize ?? ((peerId) => this.peers.has(peerId)),
      receiver: this,
    });
    this.server.on("refused", (info) => this.emit("refused", info));
    this.pool = new ClientPool(options.identity, { idleMs: options.idleConnectionMs });
  }

  get id(): string {
    return this.identity.deviceId;
  }

  /** Starts listening once; later calls return the same port. */
  start(): Promise<number> {
    this.started ??= this.server.listen().then((address) => address.port);
    return this.started;
  }

  get port(): number | undefined {
    return this.server.listening ? this.server.address().port : undefined;
  }

  set authorize(authorize: Authorizer) {
    this.server.authorize = authorize;
  }

  async stop(): Promise<void> {
    this.pool.close();
    // A stop that overtakes a start must wait for the listener to exist, or it would outlive the device.
    await this.started?.catch(() => undefined);
    await this.server.close();
  }

  async send(peer: string, topic: string, payload: unknown, options?: SendOptions): Promise<Ack> {
    return this.pool.message(this.endpoint(peer), topic, payload, options);
  }

  async sendStream(peer: string, topic: string, body: Readable, options?: StreamOptions): Promise<Ack> {
    let endpoint;
    try {
      endpoint = this.endpoint(peer);
    } catch (err) {
      body.destroy();
      throw err;
    }
    return this.pool.stream(endpoint, topic, body, options);
  }

  onMessage(pattern: string, listener: MessageListener): () => void {
    return this.messageListeners.subscribe(pattern, listener);
  }

  onStream(pattern: string, listener: StreamListener): () => void {
    return this.streamListeners.subscribe(pattern, listener);
  }

  /** @internal called by the wire server for an authorised message. */
  async acceptMessage(message: IncomingMessage): Promise<number> {
    const listeners = this.messageListeners.match(message.topic);
    if (listeners.length === 0) throw new WireError("NO_RECEIVER", `nothing on ${this.identity.shortId} receives messages on "${message.topic}"`);
    const received: ReceivedMessage = { ...message, from: this.peerRef(message.from) };
    await Promise.all(listeners.map((listener) => listener(received)));
    return listeners.length;
  }

  /** @internal called by the wire server for an authorised stream; copies it to every matching listener. */
  async acceptStream(stream: IncomingStream): Promise<{ receivers: number; bytes: number }> {
    const listeners = this.streamListeners.match(stream.topic);
    if (listeners.length === 0) throw new WireError("NO_RECEIVER", `nothing on ${this.identity.shortId} receives streams on "${stream.topic}"`);
    const from = this.peerRef(stream.from);
    let bytes = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        bytes += chunk.length;
        callback(null, chunk);
      },
    });
    const body = stream.body.pipe(counter);
    stream.body.once("error", (err) => counter.destroy(err));
    stream.body.once("aborted", () => counter.destroy(new WireError("STREAM_ABORTED", "the sender broke off the stream")));
    if (listeners.length === 1) {
      await listeners[0]({ ...stream, from, body });
    } else {
      const copies = listeners.map(() => new PassThrough());
      const consumers = listeners.map((listener, i) =>
        listener({ ...stream, from, body: copies[i] }).catch((err: unknown) => {
          copies[i].destroy(err as Error); // unblocks the fan-out waiting on this copy
          throw err;
        }),
      );
      await Promise.all([...consumers, fanOut(body, copies)]);
    }
    // A listener that stopped reading early still lets the sender finish: the ack counts every byte.
    if (!body.readableEnded) for await (const _ of body) void _;
    return { receivers: listeners.length, bytes };
  }

  private peerRef(id: string): PeerRef {
    return { id, name: this.peers.nameOf(id) };
  }

  private endpoint(reference: string): { id: string; address: string } {
    const peer = this.peers.resolve(reference);
    if (!peer.address) throw new WireError("UNREACHABLE", `no address is known for peer ${this.peers.label(peer.id)}`);
    return { id: peer.id, address: peer.address };
  }
}

/** Writes every chunk to each copy, waiting for the slowest copy before reading on. */
async function fanOut(source: Readable, copies: PassThrough[]): Promise<void> {
  try {
    for await (const chunk of source) {
      const waits = copies.filter((copy) => !copy.write(chunk)).map((copy) => once(copy, "drain"));
      if (waits.length) await Promise.all(waits);
    }
    for (const copy of copies) copy.end();
  } catch (err) {
    for (const copy of copies) copy.destroy(err as Error);
    throw err;
  }
}
