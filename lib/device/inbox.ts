import { PassThrough, Readable, Transform } from "node:stream";
import type { PeerRef } from "../acl/pending-pairings";
import { WireError } from "../protocol/errors";
import type { IncomingMessage, IncomingStream } from "../wire/server";
import { TopicSubscriptions } from "../wire/subscriptions";

export interface ReceivedMessage {
  id: string;
  from: PeerRef;
  topic: string;
  payload: unknown;
  bytes: number;
  /**
   * Present when the sender asked for a reply (device.request, peer send's "wait for reply"): answers it.
   * The first answer of any listener goes back; a later one, or one after the sender's wait, throws.
   */
  reply?: (payload: unknown) => void;
  /** How long the sender waits for the reply, from when it sent the request. */
  replyWithinMs?: number;
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

/**
 * What a device's flows listen on: topic patterns for messages and streams, and the hand-over of what
 * the wire server authorised to every matching listener. A message is acknowledged once each listener
 * took it; a stream once each listener read it to the end (or stopped reading).
 */
export class Inbox {
  private readonly messageListeners = new TopicSubscriptions<MessageListener>();
  private readonly streamListeners = new TopicSubscriptions<StreamListener>();

  constructor(
    private readonly selfShortId: string,
    private readonly peerRef: (id: string) => PeerRef,
  ) {}

  onMessage(pattern: string, listener: MessageListener): () => void {
    return this.messageListeners.subscribe(pattern, listener);
  }

  onStream(pattern: string, listener: StreamListener): () => void {
    return this.streamListeners.subscribe(pattern, listener);
  }

  /** Hands a message to every listener on its topic; resolves with how many took it. */
  async acceptMessage(message: IncomingMessage): Promise<number> {
    const listeners = this.messageListeners.match(message.topic);
    if (listeners.length === 0) throw new WireError("NO_RECEIVER", `nothing on ${this.selfShortId} receives messages on "${message.topic}"`);
    const received: ReceivedMessage = { ...message, from: this.peerRef(message.from) };
    // One listener (the usual case) needs no array of promises to wait on.
    if (listeners.length === 1) await listeners[0](received);
    else await Promise.all(listeners.map((listener) => listener(received)));
    return listeners.length;
  }

  /** Copies a stream to every listener on its topic, as fast as the slowest reads. */
  async acceptStream(stream: IncomingStream): Promise<{ receivers: number; bytes: number }> {
    const listeners = this.streamListeners.match(stream.topic);
    if (listeners.length === 0) throw new WireError("NO_RECEIVER", `nothing on ${this.selfShortId} receives streams on "${stream.topic}"`);
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
      // A reader that stops early destroys its copy (an AbortError): the others go on without it.
      for (const copy of copies) copy.on("error", () => undefined);
      const consumers = listeners.map((listener, i) =>
        listener({ ...stream, from, body: copies[i] }).then(
          () => {
            // Done without reading to the end: its copy takes nothing more, so it holds nobody back.
            if (!copies[i].readableEnded) copies[i].destroy();
          },
          (err: unknown) => {
            // A listener that fails refuses the stream: the fan-out stops at once and the sender is told.
            body.destroy(err as Error);
            throw err;
          },
        ),
      );
      await Promise.all([...consumers, fanOut(body, copies)]);
    }
    // A listener that stopped reading early still lets the sender finish: the ack counts every byte.
    if (!body.readableEnded) for await (const _ of body) void _;
    return { receivers: listeners.length, bytes };
  }
}

/** Writes every chunk to each copy still read, waiting for the slowest before reading on. */
async function fanOut(source: Readable, copies: PassThrough[]): Promise<void> {
  try {
    for await (const chunk of source) {
      const waits = copies.filter((copy) => !copy.destroyed && !copy.write(chunk)).map(drainedOrGone);
      if (waits.length) await Promise.all(waits);
    }
    for (const copy of copies) if (!copy.destroyed) copy.end();
  } catch (err) {
    for (const copy of copies) copy.destroy(err as Error);
    throw err;
  }
}

/** Resolves when the copy takes more, or when its reader is gone. */
function drainedOrGone(copy: PassThrough): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      copy.off("drain", done);
      copy.off("close", done);
      resolve();
    };
    copy.once("drain", done);
    copy.once("close", done);
  });
}
