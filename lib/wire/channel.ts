import http2, { type ClientHttp2Stream, type ServerHttp2Stream } from "node:http2";
import { WireError } from "../protocol/errors";
import { CHANNEL_CONTENT_TYPE } from "../protocol/wire";
import { errorFromResponse, resetStream } from "./http2-io";
import { type BatchItem, type BatchOutcome, MAX_BATCH_REQUEST_BYTES } from "./batch";
import { decodeOutcomes, encodeItems, encodeOutcomes } from "./channel-codec";

/**
 * The message channel: one long-lived HTTP/2 stream per peer that carries batches of messages one way
 * and their outcomes the other, as frames of [u32 length][u32 frame id][body]. A request per message
 * costs Node's http2 a stream, headers both ways and several objects; a frame costs a few bytes. The
 * frames carry what a /batch request and its answer carry, in binary (lib/wire/channel-codec.ts), and
 * each batch is handled as a /batch request is, so ids, dedupe, per-message ACL decisions and refusal
 * reasons are those of /batch.
 */

const FRAME_HEADER = 8;
/** A frame's body: one /batch request, or its answer (which is smaller). */
export const MAX_CHANNEL_FRAME_BYTES = MAX_BATCH_REQUEST_BYTES;
/** Frames the listener works on at once per channel; beyond, it stops reading (HTTP/2 flow control holds the sender). */
export const MAX_CHANNEL_FRAMES_PENDING = 8;

export interface Frame {
  id: number;
  body: Buffer;
}

export function encodeFrame(id: number, body: Buffer): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER);
  header.writeUInt32BE(body.length + 4, 0);
  header.writeUInt32BE(id, 4);
  return Buffer.concat([header, body]);
}

/** Cuts a byte stream into frames; a frame longer than the limit is a protocol error (WireError). */
export class FrameReader {
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;

  constructor(private readonly maxBody = MAX_CHANNEL_FRAME_BYTES) {}

  push(chunk: Buffer): Frame[] {
    this.buffered.push(chunk);
    this.bufferedBytes += chunk.length;
    const frames: Frame[] = [];
    for (;;) {
      if (this.bufferedBytes < FRAME_HEADER) return frames;
      const head = this.peek(FRAME_HEADER);
      const length = head.readUInt32BE(0);
      if (length < 4 || length - 4 > this.maxBody) throw new WireError("BAD_REQUEST", `a channel frame of ${length - 4} bytes (at most ${this.maxBody})`);
      if (this.bufferedBytes < 4 + length) return frames;
      const whole = this.take(4 + length);
      frames.push({ id: whole.readUInt32BE(4), body: whole.subarray(FRAME_HEADER) });
    }
  }

  /** Bytes received and not yet handed out as frames. */
  get pendingBytes(): number {
    return this.bufferedBytes;
  }

  private peek(bytes: number): Buffer {
    if (this.buffered[0].length < bytes) this.buffered = [Buffer.concat(this.buffered)];
    return this.buffered[0];
  }

  private take(bytes: number): Buffer {
    const joined = this.buffered.length === 1 ? this.buffered[0] : Buffer.concat(this.buffered);
    const taken = joined.subarray(0, bytes);
    const rest = joined.subarray(bytes);
    this.buffered = rest.length ? [rest] : [];
    this.bufferedBytes = rest.length;
    return taken;
  }
}

export interface ChannelHost {
  /** Starts delivering one frame's batch (in order with the frames before it); resolves with its outcomes. */
  handle(body: Buffer): Promise<{ outcomes: Promise<BatchOutcome[]> }>;
  /** Bytes of frames read and not yet answered are charged to the peer's share (released as answered). */
  charge(bytes: number): void;
  release(bytes: number): void;
}

/**
 * The listener's side of a channel: frames are started in order, answered as their deliveries settle,
 * and reading pauses while MAX_CHANNEL_FRAMES_PENDING are unanswered. Resolves when the stream ends.
 */
export function serveChannel(stream: ServerHttp2Stream, host: ChannelHost): Promise<void> {
  stream.respond({ ":status": 200, "content-type": CHANNEL_CONTENT_TYPE });
  const reader = new FrameReader();
  let started: Promise<unknown> = Promise.resolve();
  let pending = 0;
  let ended = false;
  let charged = 0;
  let closed = false;
  return new Promise<void>((resolve) => {
    // At close, what is still charged goes back at once; an answer settling later releases nothing twice.
    const finish = (): void => {
      closed = true;
      host.release(charged);
      charged = 0;
      resolve();
    };
    const answered = (frame: Frame, outcomes: BatchOutcome[]): void => {
      if (closed) return;
      pending -= 1;
      host.release(frame.body.length);
      charged -= frame.body.length;
      if (!stream.destroyed) stream.write(encodeFrame(frame.id, encodeOutcomes(outcomes)));
      if (pending < MAX_CHANNEL_FRAMES_PENDING && stream.isPaused()) stream.resume();
      if (ended && pending === 0 && !stream.destroyed) stream.end();
    };
    stream.on("data", (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = reader.push(chunk);
      } catch {
        resetStream(stream, http2.constants.NGHTTP2_PROTOCOL_ERROR);
        return;
      }
      for (const frame of frames) {
        try {
          host.charge(frame.body.length);
        } catch {
          resetStream(stream, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
          return;
        }
        charged += frame.body.length;
        pending += 1;
        started = started
          .then(() => host.handle(frame.body))
          .then(
            ({ outcomes }) => void outcomes.then((list) => answered(frame, list)),
            // A frame that is not a batch at all: the sender is broken or hostile, and the channel ends.
            () => resetStream(stream, http2.constants.NGHTTP2_PROTOCOL_ERROR),
          );
      }
      if (pending >= MAX_CHANNEL_FRAMES_PENDING) stream.pause();
    });
    stream.on("end", () => {
      ended = true;
      if (pending === 0 && !stream.destroyed) stream.end();
    });
    stream.once("close", finish);
  });
}

/** The peer runs a release without the message channel (it answered 404): its messages go as requests. */
export class ChannelUnsupported extends WireError {
  constructor() {
    super("NOT_FOUND", "the peer has no message channel");
  }
}

interface Waiting {
  /** The batch sent, which its answer's acks are read against. */
  sent: BatchItem[];
  resolve(outcomes: BatchOutcome[]): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/** The sender's side of one channel: frames out, answers matched to them by id. */
export class ClientChannel {
  private readonly waiting = new Map<number, Waiting>();
  private readonly reader = new FrameReader();
  private nextId = 1;
  private failure?: Error;
  /** The listener's answer to the channel (200: what comes back is frames). */
  private status?: number;
  private idleTimer?: NodeJS.Timeout;

  constructor(
    private readonly stream: ClientHttp2Stream,
    private readonly idleMs: number,
    private readonly onGone: () => void,
  ) {
    // Node may emit a DATA chunk that arrived with the HEADERS before "response": held until then.
    const early: Buffer[] = [];
    stream.once("response", (headers) => {
      const status = (this.status = Number(headers[":status"]));
      if (status === 200) {
        for (const chunk of early.splice(0)) this.receive(chunk);
        return;
      }
      // An earlier release has no route: it answers 404 (and drops the frames already sent).
      if (status === 404) {
        this.fail(new ChannelUnsupported());
        resetStream(stream);
        return;
      }
      const chunks = early.splice(0);
      stream.on("data", (chunk: Buffer) => chunks.length < 64 && chunks.push(chunk));
      stream.once("end", () => this.fail(errorFromResponse({ status, headers, body: Buffer.concat(chunks) })));
    });
    stream.on("data", (chunk: Buffer) => {
      if (this.status === undefined) early.push(chunk);
      else if (this.status === 200) this.receive(chunk);
    });
    stream.on("error", (err) => this.fail(err));
    stream.on("close", () => this.fail(new WireError("UNREACHABLE", "the message channel closed")));
    this.armIdle();
  }

  /** Frames from the listener: each answers the frame of its id. */
  private receive(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.reader.push(chunk);
    } catch (err) {
      this.fail(err as Error);
      resetStream(this.stream, http2.constants.NGHTTP2_PROTOCOL_ERROR);
      return;
    }
    for (const frame of frames) {
      const waiter = this.waiting.get(frame.id);
      if (!waiter) continue; // it timed out meanwhile
      this.waiting.delete(frame.id);
      clearTimeout(waiter.timer);
      try {
        waiter.resolve(decodeOutcomes(frame.body, waiter.sent));
      } catch (err) {
        waiter.reject(err as Error);
      }
    }
    this.armIdle();
  }

  /** Whether frames can still go out on it. */
  get open(): boolean {
    return !this.failure && !this.stream.destroyed;
  }

  /** Sends one batch; resolves with its outcomes, rejects with TIMEOUT or when the channel breaks. */
  exchange(sent: BatchItem[], timeoutMs: number): Promise<BatchOutcome[]> {
    if (this.failure) return Promise.reject(this.failure);
    const body = encodeItems(sent);
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    clearTimeout(this.idleTimer);
    return new Promise<BatchOutcome[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new WireError("TIMEOUT", `no answer within ${timeoutMs} ms`));
        this.armIdle();
      }, timeoutMs);
      this.waiting.set(id, { sent, resolve, reject, timer });
      this.stream.write(encodeFrame(id, body));
    });
  }

  /** Ends it gracefully: the listener answers what it has and ends its side. */
  close(): void {
    this.fail(new WireError("CLOSED", "the message channel was closed"));
    if (!this.stream.destroyed) this.stream.end();
  }

  /** A channel with nothing in flight for a while ends itself, before the listener's idle timeout would cut it. */
  private armIdle(): void {
    if (this.waiting.size > 0 || this.failure) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.close(), this.idleMs);
    this.idleTimer.unref();
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err instanceof WireError ? err : new WireError("UNREACHABLE", `the message channel broke: ${err.message}`);
    clearTimeout(this.idleTimer);
    for (const waiter of this.waiting.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(this.failure);
    }
    this.waiting.clear();
    this.onGone();
  }
}
