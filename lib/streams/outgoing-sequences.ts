import type { Readable } from "node:stream";
import { SequenceError, SequenceStream } from "./sequence-stream";

interface Open<T> {
  sequence: SequenceStream;
  result: Promise<T>;
  idle?: NodeJS.Timeout;
}

/**
 * Numbered parts (msg.parts sequences) turned into streams, one per sequence id. The first part opens the
 * stream; the last part resolves with what the stream's sender resolved with (the receiver's ack). A
 * sequence that failed stays failed: its later parts are refused at once instead of opening a new stream.
 */
export class OutgoingSequences<T> {
  private readonly open = new Map<string, Open<T>>();
  private readonly failed = new Map<string, Error>();

  constructor(
    private readonly idleMs: number,
    private readonly rememberFailures = 100,
  ) {}

  /**
   * Adds a part. `start` is called with the stream for the first part of a sequence. Resolves once the part
   * is written (undefined), or, for the part that completes the sequence, with the stream's result.
   */
  async push(id: string, index: number, chunk: Buffer, count: number | undefined, start: (body: Readable) => Promise<T>): Promise<T | undefined> {
    const earlier = this.failed.get(id);
    if (earlier) throw new SequenceError(`sequence ${id} already failed: ${earlier.message}`);
    const entry = this.open.get(id) ?? this.begin(id, start);
    clearTimeout(entry.idle);
    entry.idle = setTimeout(() => this.fail(id, new SequenceError(`no part of sequence ${id} for ${this.idleMs / 1000} s`)), this.idleMs);
    let completed: boolean;
    try {
      // The stream can fail while this part waits for room: the race lets the part see that failure.
      completed = await Promise.race([entry.sequence.push(index, chunk, count), entry.result.then(() => false)]);
    } catch (err) {
      this.fail(id, err as Error);
      throw err;
    }
    // Only the part that completed the sequence answers with the result (one ack per stream). Parts still
    // waiting when it completed learn of a failure too, so a sequence nobody receives fails each of them.
    if (completed) return entry.result;
    if (entry.sequence.complete) await entry.result;
    return undefined;
  }

  get size(): number {
    return this.open.size;
  }

  /** Aborts every open sequence and releases its timer. */
  close(reason = new Error("closed")): void {
    for (const id of [...this.open.keys()]) this.fail(id, reason);
  }

  private begin(id: string, start: (body: Readable) => Promise<T>): Open<T> {
    const sequence = new SequenceStream();
    const entry: Open<T> = { sequence, result: start(sequence.readable) };
    this.open.set(id, entry);
    entry.result.then(
      () => this.forget(id),
      (err: Error) => this.fail(id, err),
    );
    return entry;
  }

  private fail(id: string, err: Error): void {
    const entry = this.open.get(id);
    if (!entry) return;
    this.forget(id);
    entry.sequence.abort(err);
    this.failed.set(id, err);
    if (this.failed.size > this.rememberFailures) this.failed.delete(this.failed.keys().next().value as string);
  }

  private forget(id: string): void {
    clearTimeout(this.open.get(id)?.idle);
    this.open.delete(id);
  }
}
