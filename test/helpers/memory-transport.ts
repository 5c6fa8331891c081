import { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import { dialTcp, Transport, TransportEvents } from "../../lib";

/**
 * A test-only "radio" shared by MemoryTransports: each member sees the others come and go at once, and
 * a crashed member is lost after `expireMs`, like a peer that stops answering.
 */
export class MemoryEther {
  readonly members = new Set<MemoryTransport>();
  constructor(readonly expireMs = 100) {}
}

export class MemoryTransport extends EventEmitter<TransportEvents> implements Transport {
  readonly name = "memory";
  readonly rank = 30;
  readonly carriesIp = true;
  private running = false;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly ether: MemoryEther,
    readonly deviceId: string,
    readonly address: string,
  ) {
    super();
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    for (const other of this.ether.members) {
      other.deliver("found", this);
      this.deliver("found", other);
    }
    this.ether.members.add(this);
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.leave();
    for (const other of this.ether.members) other.deliver("lost", this);
  }

  /** Leaves without a goodbye: the others notice after the ether's expiry. */
  crash(): void {
    if (!this.running) return;
    this.leave();
    for (const other of this.ether.members) other.later(this.ether.expireMs, () => other.deliver("lost", this));
  }

  connect(address: string): Duplex {
    return dialTcp(address);
  }

  private leave(): void {
    this.running = false;
    this.ether.members.delete(this);
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  private later(ms: number, action: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      action();
    }, ms);
    this.timers.add(timer);
  }

  private deliver(event: "found" | "lost", peer: MemoryTransport): void {
    if (!this.running) return;
    if (event === "found") this.emit("found", { id: peer.deviceId, address: peer.address, verified: false });
    else this.emit("lost", peer.deviceId);
  }
}
