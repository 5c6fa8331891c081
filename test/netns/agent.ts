/**
 * Runs one Device inside a test namespace, driven by the parent test over IPC (see host-device.ts).
 * Only ever started by the netns harness, so its mDNS stays on the namespace's test interface.
 */
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { patternBytes } from "./pattern";
import { Device, Identity, KnownPeer, MeshSync, MeshSyncOptions, PeerInfo, Rule, SendMeshOptions } from "../../lib";

export interface StartCommand {
  type: "start";
  bundlePem: string;
  name: string;
  peers: KnownPeer[];
  port?: number;
  mdns?: { interface: string; announceIntervalMs?: number; expireMs?: number };
  privateDiscovery?: { epochMs?: number };
  staticProbeIntervalMs?: number;
  storageDir?: string;
  databases?: string[];
  rules?: Rule[];
  meshSync?: MeshSyncOptions;
}

/** Commands answered with a "reply" carrying the same ref. */
export type Request =
  | { type: "send"; to: string; topic: string; payload: unknown }
  | { type: "mesh-send"; to: string; text?: string; binaryBytes?: number; options?: SendMeshOptions }
  | { type: "put-docs"; database: string; from: number; count: number; bytes: number }
  | { type: "db-state"; database: string }
  | { type: "has"; id: string }
  | { type: "sync-now" }
  /** Knows one more peer from now on (as a confirmed pairing or a deploy would add it). */
  | { type: "add-peer"; peer: KnownPeer }
  /** `count` messages `<prefix>-<i>`, `inFlight` at a time, each retried with its own id until acked or the deadline. */
  | { type: "send-many"; to: string; topic: string; prefix: string; count: number; inFlight: number; deadlineMs: number; timeoutMs?: number }
  /** A stream of `bytes` pattern bytes, sent again (same id) after a failure until acked or the deadline. */
  | { type: "send-stream"; to: string; topic: string; bytes: number; deadlineMs: number; idleMs?: number; retry?: boolean }
  /** One replication session, repeated after a failure until one completes or the deadline. */
  | { type: "replicate"; peer: string; database: string; direction: "push" | "pull" | "both"; deadlineMs: number };

/** Failures by code, for the test's report of what the fault did. */
export type FailureCounts = Record<string, number>;

type Command = StartCommand | (Request & { ref: number }) | { type: "stop" };

let device: Device | undefined;
let meshSync: MeshSync | undefined;
const tell = (message: object): void => void process.send?.({ ...message, at: Date.now() });

async function start(command: StartCommand): Promise<void> {
  device = new Device({
    identity: Identity.fromBundlePem(command.bundlePem),
    name: command.name,
    host: "0.0.0.0",
    port: command.port ?? 0,
    peers: command.peers,
    storageDir: command.storageDir,
    databases: command.databases,
    acl: command.rules ? { rules: command.rules } : undefined,
    discovery: { mdns: command.mdns ?? false, privateDiscovery: command.privateDiscovery, staticProbeIntervalMs: command.staticProbeIntervalMs },
  });
  for (const event of ["found", "lost", "changed"] as const) {
    device.peerTable.on(event, (peer: PeerInfo) => tell({ type: "peer", event, peer }));
  }
  device.on("warning", (err, transport) => tell({ type: "warning", transport, message: err.message }));
  device.onMessage("#", (message) => tell({ type: "message", id: message.id, from: message.from.id, topic: message.topic, payload: message.payload }));
  device.onStream("#", async (stream) => {
    const hash = createHash("sha256");
    let bytes = 0;
    try {
      for await (const chunk of stream.body) {
        hash.update(chunk as Buffer);
        bytes += (chunk as Buffer).length;
      }
    } catch (err) {
      tell({ type: "stream-failed", id: stream.id, bytes, message: (err as Error).message });
      throw err;
    }
    tell({ type: "stream", id: stream.id, from: stream.from.id, topic: stream.topic, bytes, sha256: hash.digest("hex") });
  });
  const port = await device.start();
  if (command.meshSync) {
    const mesh = device.mesh;
    mesh.onMessage((message) => {
      const body = Buffer.isBuffer(message.payload) ? message.payload : Buffer.from(JSON.stringify(message.payload));
      tell({ type: "mesh-message", id: message.id, from: message.from, topic: message.topic, size: body.length, sha256: createHash("sha256").update(body).digest("hex") });
    });
    mesh.on("acked", (event) => tell({ type: "acked", ...event }));
    mesh.on("rejected", (event) => tell({ type: "rejected", id: event.id, reason: event.reason }));
    meshSync = new MeshSync(device, command.meshSync);
    meshSync.on("sync", (report) => tell({ type: "sync", report }));
    meshSync.on("failed", (err, peer, database) => tell({ type: "sync-failed", peer, database, message: err.message }));
    meshSync.start();
  }
  tell({ type: "ready", id: device.id, port });
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const RETRY_PAUSE_MS = 200;

/**
 * Runs `attempt` until it succeeds or the deadline passes, counting failures by code. Past the deadline
 * it throws the last error with every attempt's outcome and time, so a run that ran out of time says
 * where the time went.
 */
async function untilDone<T>(deadline: number, failures: FailureCounts, attempt: () => Promise<T>): Promise<T> {
  const attempts: string[] = [];
  for (;;) {
    const started = Date.now();
    try {
      return await attempt();
    } catch (err) {
      const code = (err as { code?: string }).code ?? "ERROR";
      failures[code] = (failures[code] ?? 0) + 1;
      attempts.push(`${code} after ${((Date.now() - started) / 1000).toFixed(1)} s`);
      if (Date.now() > deadline) {
        const message = `${(err as Error).message} (attempts: ${attempts.join(", ")})`;
        throw Object.assign(new Error(message), { code });
      }
      await pause(RETRY_PAUSE_MS);
    }
  }
}

function patternSource(total: number): Readable {
  const whole = patternBytes(total);
  const chunks: Buffer[] = [];
  for (let at = 0; at < total; at += 64 * 1024) chunks.push(whole.subarray(at, at + 64 * 1024));
  return Readable.from(chunks);
}

async function answer(request: Request): Promise<unknown> {
  const running = device!;
  switch (request.type) {
    case "send":
      return { ack: await running.send(request.to, request.topic, request.payload) };
    case "mesh-send": {
      const payload = request.binaryBytes !== undefined ? patternBytes(request.binaryBytes) : request.text;
      return running.mesh.send(request.to, payload, request.options);
    }
    case "put-docs": {
      const docs = Array.from({ length: request.count }, (_, i) => ({
        _id: `doc-${String(request.from + i).padStart(6, "0")}`,
        value: "x".repeat(request.bytes),
      }));
      const results = await running.databases.open(request.database).bulkDocs(docs);
      return { written: results.filter((result) => "ok" in result && result.ok).length };
    }
    case "db-state": {
      const all = await running.databases.open(request.database).allDocs<{ value: string }>({ conflicts: true } as never);
      const rows = all.rows as Array<{ id: string; value: { rev: string } }>;
      return {
        count: rows.length,
        ids: rows.map((row) => row.id),
        maxGeneration: Math.max(0, ...rows.map((row) => Number(row.value.rev.split("-")[0]))),
      };
    }
    case "has":
      return { has: running.mesh.has(request.id) };
    case "add-peer":
      running.addKnownPeer(request.peer);
      return {};
    case "sync-now":
      meshSync?.syncAll();
      await meshSync?.settled();
      return {};
    case "send-many": {
      const deadline = Date.now() + request.deadlineMs;
      const failures: FailureCounts = {};
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < request.count) {
          const id = `${request.prefix}-${next++}`;
          await untilDone(deadline, failures, () => running.send(request.to, request.topic, { id }, { id, timeoutMs: request.timeoutMs }));
          tell({ type: "send-acked", id });
        }
      };
      await Promise.all(Array.from({ length: request.inFlight }, worker));
      return { acked: request.count, failures };
    }
    case "send-stream": {
      const deadline = Date.now() + request.deadlineMs;
      const failures: FailureCounts = {};
      const id = `stream-${Date.now()}-${Math.random().toString(36).slice(2)}`;
      const once = (): Promise<unknown> => running.sendStream(request.to, request.topic, patternSource(request.bytes), { id, idleMs: request.idleMs });
      const ack = request.retry === false ? await once() : await untilDone(deadline, failures, once);
      return { id, ack, failures, sha256: createHash("sha256").update(patternBytes(request.bytes)).digest("hex") };
    }
    case "replicate": {
      const failures: FailureCounts = {};
      const report = await untilDone(Date.now() + request.deadlineMs, failures, async () => {
        const session = await running.databases.replicate(request.peer, request.database, request.direction);
        if (session.failures > 0) throw Object.assign(new Error(`${session.failures} documents failed`), { code: "PARTIAL" });
        return session;
      });
      return { report, failures };
    }
  }
}

async function handle(command: Command): Promise<void> {
  switch (command.type) {
    case "start":
      return start(command);
    case "stop":
      await meshSync?.stop();
      await device?.stop();
      tell({ type: "stopped" });
      process.disconnect?.();
      return;
    default: {
      const { ref, ...request } = command;
      try {
        tell({ type: "reply", ref, result: await answer(request as Request) });
      } catch (err) {
        tell({ type: "reply", ref, error: { code: (err as { code?: string }).code, message: (err as Error).message } });
      }
    }
  }
}

process.on("message", (command: Command) => {
  handle(command).catch((err: Error) => tell({ type: "failed", message: err.stack ?? err.message }));
});
// The parent going away ends the agent too: nothing outlives the test.
process.on("disconnect", () => setTimeout(() => process.exit(0), 100).unref());
