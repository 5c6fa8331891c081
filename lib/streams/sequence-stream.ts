import { PassThrough } from "node:stream";

export class SequenceError extends Error {
  readonly code = "BAD_SEQUENCE";
}

/**
 * Reassembles numbered parts (Node-RED's msg.parts: index, and count once known) into one byte stream in
 * order. Parts may arrive out of order; at most `maxPending` are held while an earlier one is missing.
 */
export class SequenceStream {
  readonly readable = new PassThrough();
  private next = 0;
  private count?: number;
  private readonly pending = new Map<number, Buffer>();
  /** One wait for 'drain' shared by every part that found the stream full (a split node delivers all its parts at once). */
  private drained?: Promise<unknown>;

  constructor(private readonly maxPending = 256) {
    // An abort after the consumer has gone must not become an uncaught 'error'; consumers still see it.
    this.readable.on("error", () => undefined);
  }

  get complete(): boolean {
    return this.count !== undefined && this.next === this.count;
  }

  /** Resolves once the part is queued or written and the stream has room for more: true for the part that completed the sequence. */
  async push(index: number, chunk: Buffer, count?: number): Promise<boolean> {
    if (!Number.isInteger(index) || index < 0) throw new SequenceError(`part index ${String(index)} is not a whole number ≥ 0`);
    if (count !== undefined) {
      if (!Number.isInteger(count) || count < 1) throw new SequenceError(`part count ${String(count)} is not a whole number ≥ 1`);
      if (this.count !== undefined && this.count !== count) throw new SequenceError(`part count changed from ${this.count} to ${count}`);
      this.count = count;
    }
    if (this.count !== undefined && index >= this.count) throw new SequenceError(`part ${index} is beyond the count of ${this.count}`);
    if (index < this.next || this.pending.has(index)) throw new SequenceError(`part ${index} arrived twice`);
    if (this.pending.size >= this.maxPending) throw new SequenceError(`more than ${this.maxPending} parts are waiting for part ${this.next}`);
    this.pending.set(index, chunk);
    let waitForRoom = false;
    for (let part = this.pending.get(this.next); part !== undefined; part = this.pending.get(this.next)) {
      this.pending.delete(this.next);
      this.next += 1;
      if (!this.readable.write(part)) waitForRoom = true;
    }
    if (this.complete) {
      this.readable.end();
      return true;
    }
    if (waitForRoom && !this.readable.destroyed) await this.room();
    return false;
  }

  /**
   * Room for more, or no more writing at all: a stream that has been ended (the last part came while earlier
   * ones waited) never emits 'drain' again, so 'finish' and 'close' end the wait too.
   */
  private room(): Promise<unknown> {
    this.drained ??= new Promise<void>((resolve, reject) => {
      const events = ["drain", "finish", "close", "error"];
      const done = (err?: unknown): void => {
        for (const event of events) this.readable.off(event, done);
        this.drained = undefined;
        if (err instanceof Error) reject(err);
        else resolve();
      };
      for (const event of events) this.readable.on(event, done);
    });
    return this.drained;
  }

  abort(err: Error): void {
    this.pending.clear();
    this.readable.destroy(err);
  }
}
