import { Device, Identity } from "../lib";

/**
 * The gateway of the scale benchmark, in a process of its own so that its memory and CPU are its own:
 * it knows the peers it is given, takes every message and drains every stream, and answers the parent's
 * "stats" with its RSS (after a full collection), CPU time and counts.
 */
interface Start {
  type: "start";
  peers: string[];
  maxConnections: number;
}

async function main(): Promise<void> {
  let device: Device | undefined;
  let messages = 0;
  let streamBytes = 0;
  process.on("message", async (command: Start | { type: "stats" } | { type: "stop" }) => {
    if (command.type === "start") {
      device = new Device({
        identity: Identity.generate(),
        peers: command.peers.map((id) => ({ id })),
        // Every device here connects from 127.0.0.1; on a network each has its own address. The total is the default's.
        limits: { maxConnectionsPerAddress: command.maxConnections },
        discovery: { staticProbeIntervalMs: 0 },
      });
      device.onMessage("#", () => void messages++);
      device.onStream("#", async (stream) => {
        for await (const chunk of stream.body) streamBytes += (chunk as Buffer).length;
      });
      const port = await device.start();
      process.send!({ type: "started", id: device.id, port });
    } else if (command.type === "stats") {
      (globalThis as { gc?: () => void }).gc?.();
      const usage = process.cpuUsage();
      process.send!({ type: "stats", rss: process.memoryUsage().rss, cpuMs: (usage.user + usage.system) / 1000, messages, streamBytes });
    } else {
      await device?.stop();
      process.exit(0);
    }
  });
}

void main();
