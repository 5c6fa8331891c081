import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import v8 from "node:v8";
import { Device, Identity, levelDbMemory, memoryTrimStatus, MeshSync, residentSplit, type MemoryTrimStatus } from "../lib";

/**
 * npm run soak: three devices on loopback (A, relay B, C) under steady load for a bounded time:
 * messages A→B over the wire (up to 2,000/s, 16 in flight), a 256 KB stream A→B every second, and a store-and-forward
 * message A→C through B every 200 ms. Reports sent, delivered, duplicated and lost per kind, and the
 * resident memory over time, as one JSON line at the end; exits 1 when anything was lost or duplicated.
 */
export interface SoakReport {
  seconds: number;
  messages: Tally;
  streams: Tally & { bytes: number };
  mesh: Tally;
  /**
   * Resident memory, and beside it the JS heap in use and reserved, and the memory outside the heap that
   * JS objects hold (Buffers): a climb in one but not the others says where to look. On Linux also RSS
   * split into anonymous memory and mapped files (LevelDB maps its table files into memory to read them).
   * And the acks the mesh stores hold: each is kept until its message's time to live ends (a day by
   * default) or the ack quota (10,000 per device) makes room, and each costs about 1.3 KB of heap.
   */
  rssMb: Array<{ at: number; mb: number; heapMb: number; heapTotalMb: number; externalMb: number; anonMb?: number; fileMb?: number; levelDbMb: number; acksHeld: number; v8?: V8Spaces }>;
  /**
   * RSS growth from minute 5 to the end (runs of 10 minutes or more), each end taken as the lowest RSS
   * over 2.5 minutes (GROWTH_WINDOW_S: around minute 5, and the last): V8 grows its old generation with
   * the allocation rate and gives it back at each full collection, a saw-tooth of 60–70 MB whose peaks
   * can last over a minute, which a shorter window would read as growth or shrinkage.
   */
  growthMb?: number;
  /**
   * The same growth of native memory alone: anonymous RSS less V8's reserved heap and LevelDB's own
   * count, the memory the package's native parts and the allocator hold (Linux). V8's heap swings by
   * tens of MB with the allocation rate, more than the RSS goal, so this is the figure that shows a
   * change in native memory from one run to the next.
   */
  nativeGrowthMb?: number;
  /** The same growth of V8's reserved heap, in all and by space (each the lowest over the same spans, on its own). */
  v8GrowthMb?: { reservedMb?: number } & Partial<V8Spaces>;
  /** What the memory trimmer did (README, Memory): how often, how much it gave back, its longest call. */
  memoryTrim?: MemoryTrimStatus;
}

/**
 * V8's reserved heap by the spaces that make most of it, in MB: the young generation (fixed in size once the
 * allocation rate has grown it), the old generation and the large objects (a Buffer's JS side is small;
 * large objects are arrays and strings over ~128 KB). Which of them a swing of the reserved heap is in
 * says whether it is V8 sizing its heap or something kept.
 */
export interface V8Spaces {
  newMb: number;
  oldMb: number;
  largeObjectsMb: number;
}

interface Tally {
  sent: number;
  delivered: number;
  duplicated: number;
  lost: number;
  failed: number;
}

const tally = (): Tally => ({ sent: 0, delivered: 0, duplicated: 0, lost: 0, failed: 0 });
/** A steady load, not a throughput test: the memory figures then speak of the devices, not of a backlog. */
const MESSAGES_PER_SECOND = 2_000;
const IN_FLIGHT = 16;

/** How often each sequence number arrived, in one byte each (a soak sends millions). */
class Arrivals {
  private counts = new Uint8Array(1024);
  private distinct = 0;
  private repeated = 0;

  add(seq: number): void {
    if (!Number.isInteger(seq) || seq < 0) return;
    while (seq >= this.counts.length) {
      const grown = new Uint8Array(this.counts.length * 2);
      grown.set(this.counts);
      this.counts = grown;
    }
    if (this.counts[seq] === 0) this.distinct++;
    else if (this.counts[seq] === 1) this.repeated++;
    if (this.counts[seq] < 255) this.counts[seq]++;
  }

  get size(): number {
    return this.distinct;
  }

  get duplicated(): number {
    return this.repeated;
  }
}
/** RSS as anonymous memory and mapped files, in MB, where /proc says (Linux). */
function residentMb(): { anonMb?: number; fileMb?: number } {
  const { anonymousBytes, fileBytes } = residentSplit();
  const mb = (bytes: number | undefined): number | undefined => (bytes === undefined ? undefined : Math.round(bytes / 1048576));
  return { anonMb: mb(anonymousBytes), fileMb: mb(fileBytes) };
}

type Sample = SoakReport["rssMb"][number];

function v8Spaces(): V8Spaces {
  const committed = new Map(v8.getHeapSpaceStatistics().map((space) => [space.space_name, space.space_size]));
  const mb = (...names: string[]): number => Math.round(names.reduce((sum, name) => sum + (committed.get(name) ?? 0), 0) / 1048576);
  return { newMb: mb("new_space"), oldMb: mb("old_space"), largeObjectsMb: mb("large_object_space", "new_large_object_space") };
}

/**
 * The span each end of the growth figures is the lowest of. A 30-minute soak (2026-12-08) had V8's old
 * generation at 43–115 MB, up for as long as 75 s between full collections: a window of one minute read
 * RSS growth of +71 and +79 MB in two runs and −13 in a third, as the last minute fell on a peak or not.
 */
export const GROWTH_WINDOW_S = 150;

/** See SoakReport.growthMb; `of` picks another figure from each sample (undefined where a sample lacks it). */
export function growthFromMinuteFive(samples: SoakReport["rssMb"], seconds: number, of: (sample: Sample) => number | undefined = (sample) => sample.mb): number | undefined {
  if (seconds < 600) return undefined;
  const lowest = (from: number, to: number): number => Math.min(...samples.filter((s) => s.at >= from && s.at <= to).map(of).filter((v): v is number => v !== undefined));
  const growth = lowest(seconds - GROWTH_WINDOW_S, seconds) - lowest(300 - GROWTH_WINDOW_S / 2, 300 + GROWTH_WINDOW_S / 2);
  return Number.isFinite(growth) ? growth : undefined;
}

/** See SoakReport.nativeGrowthMb. */
export const nativeMb = (sample: Sample): number | undefined => (sample.anonMb === undefined ? undefined : sample.anonMb - sample.heapTotalMb - sample.levelDbMb);

/** See SoakReport.v8GrowthMb. */
export function v8GrowthFromMinuteFive(samples: SoakReport["rssMb"], seconds: number): SoakReport["v8GrowthMb"] {
  if (seconds < 600) return undefined;
  const ofSpace = (space: keyof V8Spaces) => (sample: Sample): number | undefined => sample.v8?.[space];
  return {
    reservedMb: growthFromMinuteFive(samples, seconds, (sample) => sample.heapTotalMb),
    newMb: growthFromMinuteFive(samples, seconds, ofSpace("newMb")),
    oldMb: growthFromMinuteFive(samples, seconds, ofSpace("oldMb")),
    largeObjectsMb: growthFromMinuteFive(samples, seconds, ofSpace("largeObjectsMb")),
  };
}

const STREAM_BYTES = 256 * 1024;

/** The soak's stream, STREAM_BYTES of `seq`'s low byte, in pieces of `pieceBytes`, each allocated as it is read. */
function* streamSource(seq: number, pieceBytes: number): Generator<Buffer> {
  for (let offset = 0; offset < STREAM_BYTES; offset += pieceBytes) yield Buffer.alloc(Math.min(pieceBytes, STREAM_BYTES - offset), seq & 0xff);
}
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface SoakOptions {
  /**
   * Time to live of the store-and-forward messages (the mesh's default is a day). Each device keeps a
   * message's ack as long as the message could still be around, up to 10,000: with the default, a 30-minute
   * soak measures those acks filling up (~8,500 a device at the soak's rate), not a steady state.
   */
  meshTtlMs?: number;
  /**
   * The stream's source hands it over in pieces of this many bytes (default: the whole 256 KB at once). A
   * file read with fs.createReadStream comes in 64 KiB pieces; glibc serves a block over its mmap threshold
   * (128 KiB at first) differently, so the piece size is what tells whether the native growth follows it.
   */
  streamChunkBytes?: number;
  /** The devices' memoryTrimIntervalMs (0: off, to compare; default: the Device's). */
  memoryTrimIntervalMs?: number;
  /**
   * Loads left out, to tell which one the memory follows: the messages, the streams or the
   * store-and-forward messages (mesh sync still runs between the devices without the last).
   */
  without?: ReadonlyArray<SoakLoad>;
}

export const SOAK_LOADS = ["messages", "streams", "mesh"] as const;
export type SoakLoad = (typeof SOAK_LOADS)[number];

export async function soak(seconds: number, options: SoakOptions = {}): Promise<SoakReport> {
  const dirs = ["a", "b", "c"].map((name) => fs.mkdtempSync(path.join(os.tmpdir(), `peer-mesh-soak-${name}-`)));
  const identities = [Identity.generate({ name: "a" }), Identity.generate({ name: "b" }), Identity.generate({ name: "c" })];
  const devices = identities.map((identity, i) => new Device({ identity, name: ["a", "b", "c"][i], storageDir: dirs[i], discovery: { staticProbeIntervalMs: 500 }, memoryTrimIntervalMs: options.memoryTrimIntervalMs }));
  const [a, b, c] = devices;
  const report: SoakReport = { seconds, messages: tally(), streams: { ...tally(), bytes: 0 }, mesh: tally(), rssMb: [] };
  const seen = { messages: new Arrivals(), streams: new Arrivals(), mesh: new Arrivals() };
  const count = (arrivals: Arrivals, seq: number): void => arrivals.add(seq);
  const syncs: MeshSync[] = [];
  try {
    const ports = await Promise.all(devices.map((device) => device.start()));
    const link = (from: Device, to: Device, port: number, name: string): void => from.addKnownPeer({ id: to.id, name, address: `127.0.0.1:${port}` });
    link(a, b, ports[1], "b");
    link(b, a, ports[0], "a");
    link(b, c, ports[2], "c");
    link(c, b, ports[1], "b");
    b.onMessage("soak/#", (message) => count(seen.messages, (message.payload as { seq: number }).seq));
    b.onStream("soak/#", async (stream) => {
      let bytes = 0;
      for await (const chunk of stream.body) bytes += (chunk as Buffer).length;
      if (bytes === STREAM_BYTES) count(seen.streams, Number(stream.topic.split("/").pop()));
    });
    c.mesh.onMessage((message) => count(seen.mesh, (message.payload as { seq: number }).seq));
    for (const device of devices) {
      const sync = new MeshSync(device, { databases: [], direction: "both", mesh: true, policy: { intervalMs: 0 } });
      syncs.push(sync);
      sync.start();
    }
    const deadline = Date.now() + 30_000;
    while (!a.mesh.has(`dev:${c.id}`)) {
      if (Date.now() > deadline) throw new Error("C's device document never reached A");
      await sleep(100);
    }

    const started = Date.now();
    const until = started + seconds * 1000;
    const running = (): boolean => Date.now() < until;
    const runs = (load: SoakLoad): boolean => !options.without?.includes(load);
    const sample = (): void => {
      // Run with node --expose-gc and each sample follows a full collection: the heap in use is then
      // what is still referenced, not wherever the last collection left it.
      (globalThis as { gc?: () => void }).gc?.();
      const memory = process.memoryUsage();
      const mb = (bytes: number): number => Math.round(bytes / 1048576);
      report.rssMb.push({ at: Math.round((Date.now() - started) / 1000), mb: mb(memory.rss), heapMb: mb(memory.heapUsed), heapTotalMb: mb(memory.heapTotal), externalMb: mb(memory.external), ...residentMb(), levelDbMb: mb(levelDbMemory().bytes), acksHeld: devices.reduce((sum, device) => sum + device.mesh.storedAcks, 0), v8: v8Spaces() });
    };
    sample();
    const sampler = setInterval(sample, Math.min(15_000, Math.max(1_000, (seconds * 1000) / 20)));

    let messageSeq = 0;
    const messageWorkers = Array.from({ length: runs("messages") ? IN_FLIGHT : 0 }, async () => {
      while (running()) {
        // Paced from the start time, so a slow moment is made up for but never turns into a burst backlog.
        const seq = messageSeq++;
        const due = started + (seq / MESSAGES_PER_SECOND) * 1000;
        if (due > Date.now()) await sleep(due - Date.now());
        try {
          await a.send(b.id, `soak/m/${seq % 8}`, { seq, at: Date.now(), pad: "x".repeat(200) });
          report.messages.sent++;
        } catch {
          report.messages.failed++;
        }
      }
    });
    const streamWorker = (async () => {
      for (let seq = 0; runs("streams") && running(); seq++) {
        try {
          await a.sendStream(b.id, `soak/s/${seq}`, Readable.from(streamSource(seq, options.streamChunkBytes ?? STREAM_BYTES)));
          report.streams.sent++;
          report.streams.bytes += STREAM_BYTES;
        } catch {
          report.streams.failed++;
        }
        await sleep(1_000);
      }
    })();
    const meshWorker = (async () => {
      for (let seq = 0; runs("mesh") && running(); seq++) {
        try {
          await a.mesh.send(c.id, { seq }, { topic: "soak", ttlMs: options.meshTtlMs });
          report.mesh.sent++;
        } catch {
          report.mesh.failed++;
        }
        await sleep(200);
      }
    })();
    await Promise.all([...messageWorkers, streamWorker, meshWorker]);
    // Store-and-forward is eventually delivered: a grace period for the last ones on their way.
    const grace = Date.now() + 30_000;
    while (seen.mesh.size < report.mesh.sent && Date.now() < grace) await sleep(200);
    clearInterval(sampler);
    sample();

    const settle = (kind: Tally, arrivals: Arrivals): void => {
      kind.delivered = arrivals.size;
      kind.duplicated = arrivals.duplicated;
      kind.lost = Math.max(0, kind.sent - arrivals.size);
    };
    settle(report.messages, seen.messages);
    settle(report.streams, seen.streams);
    settle(report.mesh, seen.mesh);
    report.growthMb = growthFromMinuteFive(report.rssMb, seconds);
    report.nativeGrowthMb = growthFromMinuteFive(report.rssMb, seconds, nativeMb);
    report.v8GrowthMb = v8GrowthFromMinuteFive(report.rssMb, seconds);
    report.memoryTrim = memoryTrimStatus();
    return report;
  } finally {
    await Promise.all(syncs.map((sync) => sync.stop()));
    await Promise.all(devices.map((device) => device.stop()));
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const flag = process.argv.indexOf("--seconds");
  const seconds = Number(flag >= 0 ? process.argv[flag + 1] : process.env.SOAK_SECONDS ?? 600);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 3600) {
    console.error("--seconds must be between 1 and 3600");
    process.exit(2);
  }
  const ttlFlag = process.argv.indexOf("--mesh-ttl-minutes");
  const meshTtlMs = ttlFlag >= 0 ? Number(process.argv[ttlFlag + 1]) * 60_000 : undefined;
  if (meshTtlMs !== undefined && !(meshTtlMs >= 60_000)) {
    console.error("--mesh-ttl-minutes takes a number of minutes, at least 1");
    process.exit(2);
  }
  const chunkFlag = process.argv.indexOf("--stream-chunk-kb");
  const streamChunkBytes = chunkFlag >= 0 ? Number(process.argv[chunkFlag + 1]) * 1024 : undefined;
  if (streamChunkBytes !== undefined && !(Number.isInteger(streamChunkBytes) && streamChunkBytes >= 1024 && streamChunkBytes <= STREAM_BYTES)) {
    console.error(`--stream-chunk-kb takes a whole number of KB from 1 to ${STREAM_BYTES / 1024}`);
    process.exit(2);
  }
  const trimFlag = process.argv.indexOf("--memory-trim-seconds");
  const memoryTrimIntervalMs = trimFlag >= 0 ? Number(process.argv[trimFlag + 1]) * 1000 : undefined;
  if (memoryTrimIntervalMs !== undefined && !(memoryTrimIntervalMs >= 0)) {
    console.error("--memory-trim-seconds takes a number of seconds (0: off)");
    process.exit(2);
  }
  const withoutFlag = process.argv.indexOf("--without");
  const without = withoutFlag >= 0 ? (process.argv[withoutFlag + 1] ?? "").split(",") : [];
  const unknown = without.filter((load) => !(SOAK_LOADS as readonly string[]).includes(load));
  if (unknown.length > 0 || (withoutFlag >= 0 && without.length === 0)) {
    console.error(`--without takes a comma-separated list of ${SOAK_LOADS.join(", ")}`);
    process.exit(2);
  }
  soak(seconds, { meshTtlMs, streamChunkBytes, memoryTrimIntervalMs, without: without as SoakLoad[] }).then(
    (report) => {
      for (const kind of SOAK_LOADS) {
        const t = report[kind];
        console.log(`${kind.padEnd(9)} sent ${t.sent}, delivered ${t.delivered}, duplicated ${t.duplicated}, lost ${t.lost}, failed to send ${t.failed}`);
      }
      console.log(`rss / heap used / heap reserved / external / anonymous / mapped files / LevelDB (MB) / acks held by the three devices over time: ${report.rssMb.map((s) => `${s.at}s:${s.mb}/${s.heapMb}/${s.heapTotalMb}/${s.externalMb}/${s.anonMb ?? "?"}/${s.fileMb ?? "?"}/${s.levelDbMb}/${s.acksHeld}`).join(" ")}`);
      if (report.growthMb !== undefined) console.log(`RSS growth from minute 5 to the end (the lowest over ${GROWTH_WINDOW_S} s at each end): ${report.growthMb} MB`);
      if (report.nativeGrowthMb !== undefined) console.log(`native memory (anonymous RSS less V8's reserved heap and LevelDB's count), the same way: ${report.nativeGrowthMb} MB`);
      const heap = report.v8GrowthMb;
      if (heap) console.log(`V8's reserved heap, the same way: ${heap.reservedMb} MB (young generation ${heap.newMb}, old ${heap.oldMb}, large objects ${heap.largeObjectsMb})`);
      const trim = report.memoryTrim;
      if (trim) console.log(trim.available ? `memory trim: ${trim.trims} trims gave back ${(trim.releasedBytes / 1048576).toFixed(1)} MB in all, the longest took ${trim.longestMs.toFixed(1)} ms` : `memory trim unavailable: ${trim.reason}`);
      console.log(JSON.stringify(report));
      const bad = SOAK_LOADS.some((kind) => report[kind].lost > 0 || report[kind].duplicated > 0);
      process.exit(bad ? 1 : 0);
    },
    (err: Error) => {
      console.error(err);
      process.exit(1);
    },
  );
}
