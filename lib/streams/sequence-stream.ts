import { once } from "node:events";
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

  constructor(private readonly maxPending = 256) {
    // An abort after the consumer has gone must not become an uncaught 'error'; consumers still see it.
    this.readable.on("error", () => undefined);
  }

  get complete(): boolean {
    return this.count !== undefined && this.next === this.count;
  }

  /** Resolves once the part is queued or written and the stream has room for more. */
  async push(index: number, chunk: Buffer, count?: number): Promise<void> {
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
    if (this.complete) this.readable.end();
    else if (waitForRoom && !this.readable.destroyed) await once(this.readable, "drain");
  }

  abort(err: Error): void {
    this.pending.clear();
    this.readable.destroy(err);
  }
}
