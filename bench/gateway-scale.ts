import { type ChildProcess, fork } from "node:child_process";
import path from "node:path";
import { Readable } from "node:stream";
import { Device, Identity } from "../lib";
import { percentile } from "./stats";

interface GatewayStats {
  rss: number;
  cpuMs: number;
  messages: number;
  streamBytes: number;
}

/** One step of the scale table: what the gateway holds and does with `peers` connected. */
export interface ScaleStep {
  peers: number;
  /** The gateway's RSS with these peers connected and idle, after a full collection (MB). */
  idleRssMb: number;
  /** (idle RSS − RSS before any peer) / peers (KB). */
  rssPerPeerKb: number;
  sent: number;
  delivered: number;
  p50Ms: number;
  p99Ms: number;
  /** The gateway's CPU time per 1,000 messages delivered, streams included (ms). */
  cpuMsPer1k: number;
  /** The share of one core the gateway used under load (%). */
  cpuPercent: number;
  streamMb: number;
}

class Gateway {
  private waiting?: (value: unknown) => void;

  private constructor(readonly child: ChildProcess) {
    child.on("message", (message) => this.waiting?.(message));
  }

  static start(): Gateway {
    return new Gateway(fork(path.join(__dirname, "gateway-child.js"), [], { execArgv: ["--expose-gc"], stdio: ["ignore", "inherit", "inherit", "ipc"] }));
  }

  ask<T>(command: Record<string, unknown>): Promise<T> {
    return new Promise((resolve) => {
      this.waiting = resolve as (value: unknown) => void;
      this.child.send(command);
    });
  }

  async stop(): Promise<void> {
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.send({ type: "stop" });
    await exited;
  }
}

/** `bytes` of zeros in 64 KiB chunks, made lazily. */
function zeros(bytes: number): Readable {
  let left = bytes;
  return new Readable({
    read() {
      const size = Math.min(65_536, left);
      left -= size;
      this.push(size > 0 ? Buffer.alloc(size) : null);
    },
  });
}

/**
 * One gateway, and 10, 100, then `maxPeers` devices connected to it (in this process, each with its own
 * key and connection), each sending one message a second at its own moment for `loadSeconds`, while 10
 * of them send a 1 MB stream every 2 s. The gateway runs in a child process and reports its own RSS and
 * CPU; latencies are send → ack at the devices.
 */
export async function gatewayScale(options: { steps: number[]; loadSeconds: number; onStep?: (step: ScaleStep) => void }): Promise<ScaleStep[]> {
  const maxPeers = Math.max(...options.steps);
  const identities = Array.from({ length: maxPeers }, () => Identity.generate());
  const gateway = Gateway.start();
  const devices: Device[] = [];
  const steps: ScaleStep[] = [];
  try {
    const { id, port } = await gateway.ask<{ id: string; port: number }>({ type: "start", peers: identities.map((identity) => identity.deviceId), maxConnections: maxPeers + 64 });
    const bare = await gateway.ask<GatewayStats>({ type: "stats" });
    for (const count of options.steps) {
      while (devices.length < count) {
        const identity = identities[devices.length];
        devices.push(new Device({ identity, peers: [{ id, name: "gateway", address: `127.0.0.1:${port}` }], discovery: { staticProbeIntervalMs: 0 }, idleConnectionMs: 10 * 60_000 }));
      }
      // Connected, 50 at a time, with one message each.
      for (let at = 0; at < count; at += 50) await Promise.all(devices.slice(at, at + 50).map((device) => device.send("gateway", "hello", 0)));
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const idle = await gateway.ask<GatewayStats>({ type: "stats" });
      const latencies: number[] = [];
      let sent = 0;
      let failed = 0;
      const timers: NodeJS.Timeout[] = [];
      const loadMs = options.loadSeconds * 1_000;
      const startedAt = Date.now();
      const before = await gateway.ask<GatewayStats>({ type: "stats" });
      for (const device of devices.slice(0, count)) {
        const tick = (): void => {
          if (Date.now() - startedAt >= loadMs) return;
          sent++;
          const t = performance.now();
          device.send("gateway", "reading", { celsius: 21.5, at: Date.now() }).then(
            () => latencies.push(performance.now() - t),
            () => void failed++,
          );
          timers.push(setTimeout(tick, 1_000));
        };
        timers.push(setTimeout(tick, Math.random() * 1_000));
      }
      const streams = devices.slice(0, Math.min(10, count)).map(async (device) => {
        let bytes = 0;
        while (Date.now() - startedAt < loadMs - 2_000) {
          const started = Date.now();
          await device.sendStream("gateway", "log", zeros(1024 * 1024));
          bytes += 1024 * 1024;
          await new Promise((resolve) => setTimeout(resolve, Math.max(0, 2_000 - (Date.now() - started))));
        }
        return bytes;
      });
      await new Promise((resolve) => setTimeout(resolve, loadMs));
      const streamBytes = (await Promise.all(streams)).reduce((sum, bytes) => sum + bytes, 0);
      // The last acks in flight.
      const deadline = Date.now() + 10_000;
      while (latencies.length + failed < sent && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      for (const timer of timers) clearTimeout(timer);
      const after = await gateway.ask<GatewayStats>({ type: "stats" });
      const delivered = after.messages - before.messages;
      const cpuMs = after.cpuMs - before.cpuMs;
      const step: ScaleStep = {
        peers: count,
        idleRssMb: idle.rss / 2 ** 20,
        rssPerPeerKb: (idle.rss - bare.rss) / 1024 / count,
        sent,
        delivered,
        p50Ms: percentile(latencies, 50),
        p99Ms: percentile(latencies, 99),
        cpuMsPer1k: (cpuMs / Math.max(1, delivered)) * 1_000,
        cpuPercent: (cpuMs / loadMs) * 100,
        streamMb: streamBytes / 2 ** 20,
      };
      steps.push(step);
      options.onStep?.(step);
    }
    return steps;
  } finally {
    await Promise.all(devices.map((device) => device.stop()));
    await gateway.stop();
  }
}
