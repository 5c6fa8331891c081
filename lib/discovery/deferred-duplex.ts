import { Duplex } from "node:stream";

/**
 * A byte stream handed out at once for a connection that opens later (through a SOCKS proxy, say):
 * writes wait until it is open, then both directions pass straight through with backpressure. The TLS
 * client on top needs its socket synchronously, which is why this exists.
 */
export class DeferredDuplex extends Duplex {
  private inner?: Duplex;
  private waiting: Array<() => void> = [];

  constructor(opening: Promise<Duplex>) {
    super();
    opening.then(
      (inner) => this.attach(inner),
      (err: Error) => this.destroy(err),
    );
  }

  private attach(inner: Duplex): void {
    if (this.destroyed) {
      inner.destroy();
      return;
    }
    this.inner = inner;
    inner.on("data", (chunk: Buffer) => {
      if (!this.push(chunk)) inner.pause();
    });
    inner.once("end", () => this.push(null));
    inner.once("error", (err) => this.destroy(err));
    inner.once("close", () => this.destroy());
    for (const resume of this.waiting.splice(0)) resume();
  }

  /** Runs `work` once the connection is open. */
  private whenOpen(work: (inner: Duplex) => void): void {
    if (this.inner) work(this.inner);
    else this.waiting.push(() => work(this.inner!));
  }

  override _read(): void {
    this.inner?.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.whenOpen((inner) => {
      if (inner.write(chunk)) callback();
      else inner.once("drain", () => callback());
    });
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.whenOpen((inner) => inner.end(() => callback()));
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.waiting = [];
    this.inner?.destroy();
    callback(err);
  }
}
