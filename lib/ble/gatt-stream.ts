import { Duplex } from "node:stream";

/**
 * How one side of a GATT connection sends: the central writes to the peripheral's RX characteristic
 * (write with response), the peripheral notifies on its TX characteristic. `send` calls back once the
 * chunk has left (the write's response, the notification's "sent"), which paces the stream: one chunk in
 * flight, so a slow radio holds bytes at the sender, not in memory here.
 */
export interface GattSender {
  /** The largest chunk one write or notification carries (ATT MTU - 3). */
  readonly chunkBytes: number;
  send(chunk: Buffer, sent: (err?: Error | null) => void): void;
}

/**
 * A byte stream over one GATT connection, for the TLS session of the wire. GATT delivers writes and
 * notifications in order and intact (the link layer retransmits), so bytes need no framing; the stream
 * ends when the connection does, and a connection that drops mid-stream destroys it with an error.
 */
export class GattStream extends Duplex {
  private sender?: GattSender;
  private readonly waitingForSender: Array<() => void> = [];
  /** Incoming chunks whose acknowledgement waits for the reader: GATT's flow control reaches the peer. */
  private readonly heldAcks: Array<() => void> = [];

  constructor(readonly remote: string) {
    super({ allowHalfOpen: false });
  }

  /** The way out, once the connection is ready (the central subscribed, the characteristics were found). */
  attach(sender: GattSender): void {
    this.sender = sender;
    for (const wake of this.waitingForSender.splice(0)) wake();
  }

  /** A chunk that arrived; `ack` answers the write (or is a no-op for a notification) once there is room. */
  receive(chunk: Buffer, ack: () => void = () => undefined): void {
    if (this.destroyed) return ack();
    if (this.push(chunk)) ack();
    else this.heldAcks.push(ack);
  }

  /** The connection is gone: GATT has no clean close, so the stream ends with an error (TLS's close_notify already ended a clean session). */
  disconnected(reason: string): void {
    if (this.destroyed) return;
    this.destroy(Object.assign(new Error(`the BLE link to ${this.remote} dropped: ${reason}`), { code: "ECONNRESET" }));
  }

  override _read(): void {
    for (const ack of this.heldAcks.splice(0)) ack();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    const start = (): void => this.sendChunks(chunk, 0, callback);
    if (this.sender) start();
    else this.waitingForSender.push(start);
  }

  private sendChunks(data: Buffer, offset: number, callback: (err?: Error | null) => void): void {
    if (this.destroyed) return callback(new Error("the BLE link is closed"));
    const sender = this.sender!;
    if (offset >= data.length) return callback();
    const piece = data.subarray(offset, offset + sender.chunkBytes);
    sender.send(piece, (err) => (err ? callback(err) : this.sendChunks(data, offset + piece.length, callback)));
  }

  override _final(callback: (err?: Error | null) => void): void {
    callback();
    // A GATT connection has no half-close: the side that ends closes the link (see onEnd in the transport).
    this.emit("finished");
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    for (const ack of this.heldAcks.splice(0)) ack();
    this.waitingForSender.length = 0;
    callback(err);
  }
}
