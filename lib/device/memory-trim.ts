import fs from "node:fs";

/**
 * Hands memory that the C heap has freed back to the system, every so often, while a device runs.
 *
 * glibc's malloc keeps what is freed in the middle of its arenas: it returns memory to the system only
 * from an arena's top, and LevelDB, OpenSSL, HTTP/2 and dead Buffers free all over them. Under the soak's
 * steady traffic that slack was 4–16 MB at a time and built up again within minutes (README, Memory).
 * glibc's malloc_trim(0) gives back every whole free page in every arena; nothing in Node calls it, so
 * it is called here, through koffi (an optional FFI package with prebuilt binaries), on a worker thread
 * so that the event loop does not wait for it. Where koffi or glibc is missing (musl, macOS, Windows),
 * trimming is "unavailable" and nothing else changes.
 */

export const DEFAULT_MEMORY_TRIM_INTERVAL_MS = 60_000;

type TrimCall = ((pad: number) => number) & { async(pad: number, callback: (err: unknown, result: number) => void): void };
interface Koffi {
  load(path: string): { func(signature: string): TrimCall };
}

export interface MemoryTrimStatus {
  available: boolean;
  /** Why trimming cannot run here, when it cannot. */
  reason?: string;
  /** How many devices hold the trimmer running, and how often it runs for them (the shortest interval asked). */
  holders: number;
  intervalMs?: number;
  trims: number;
  /** Resident anonymous memory given back, summed over every trim (measured around each, so approximate). */
  releasedBytes: number;
  lastReleasedBytes?: number;
  longestMs: number;
}

let trimCall: TrimCall | undefined;
let unavailable: string | undefined;
let loaded = false;

// Not `import`: koffi is optional, and a missing or unloadable one must become "unavailable", not a crash.
const load = (id: string): unknown => require(id);

function trimFunction(): TrimCall | undefined {
  if (loaded) return trimCall;
  loaded = true;
  if (process.platform !== "linux") {
    unavailable = `malloc_trim is glibc's; this is ${process.platform}`;
    return undefined;
  }
  try {
    const koffi = load("koffi") as Koffi;
    trimCall = koffi.load("libc.so.6").func("int malloc_trim(size_t pad)");
  } catch (err) {
    unavailable = `glibc's malloc_trim could not be loaded through koffi: ${(err as Error).message}`;
  }
  return trimCall;
}

const holders = new Map<symbol, number>();
let timer: NodeJS.Timeout | undefined;
/** When the last trim started (or the first device asked for one): the next is due an interval later. */
let lastTrimAt: number | undefined;
let running: Promise<number | undefined> | undefined;
const counts = { trims: 0, releasedBytes: 0, lastReleasedBytes: undefined as number | undefined, longestMs: 0 };

/** The shortest interval any holder asks for; undefined with none. */
function intervalMs(): number | undefined {
  return holders.size > 0 ? Math.min(...holders.values()) : undefined;
}

/**
 * This process's resident memory in bytes, split into anonymous memory and mapped files (LevelDB maps its
 * table files), from Linux's /proc; empty where /proc does not say.
 */
export function residentSplit(): { anonymousBytes?: number; fileBytes?: number } {
  try {
    const status = fs.readFileSync("/proc/self/status", "utf8");
    const bytes = (field: string): number | undefined => {
      const found = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(status);
      return found ? Number(found[1]) * 1024 : undefined;
    };
    return { anonymousBytes: bytes("RssAnon"), fileBytes: bytes("RssFile") };
  } catch {
    return {};
  }
}

/** Resolves when the trim under way (if any) has ended. */
export function trimUnderWay(): Promise<void> {
  return running ? running.then(() => undefined) : Promise.resolve();
}

/**
 * Trims now, on a worker thread; resolves with the resident anonymous bytes given back (approximate: the
 * process goes on allocating meanwhile), or undefined where trimming is unavailable. Calls that overlap
 * share one trim.
 */
export function trimMemoryNow(): Promise<number | undefined> {
  const trim = trimFunction();
  if (!trim) return Promise.resolve(undefined);
  running ??= new Promise<number | undefined>((resolve) => {
    const before = residentSplit().anonymousBytes;
    const started = performance.now();
    lastTrimAt = started;
    trim.async(0, () => {
      const ms = performance.now() - started;
      const after = residentSplit().anonymousBytes;
      const released = before !== undefined && after !== undefined ? Math.max(0, before - after) : 0;
      counts.trims++;
      counts.releasedBytes += released;
      counts.lastReleasedBytes = released;
      counts.longestMs = Math.max(counts.longestMs, ms);
      running = undefined;
      resolve(released);
    });
  });
  return running;
}

/**
 * Arms the one timer for the next trim, due an interval after the last: a Node-RED deploy stops every
 * device and starts it again a moment later, and that must not put the next trim off each time.
 */
function arm(): void {
  if (timer) clearTimeout(timer);
  timer = undefined;
  const every = intervalMs();
  if (every === undefined) return;
  const now = performance.now();
  lastTrimAt ??= now;
  timer = setTimeout(() => {
    timer = undefined;
    void trimMemoryNow().then(arm);
  }, Math.max(0, lastTrimAt + every - now));
  // A process with nothing else to do still exits.
  timer.unref();
}

/**
 * Keeps the trimmer running (one timer per process, at the shortest interval any holder asks) until the
 * returned release is called; a release called twice counts once. 0 holds nothing. The interval is
 * checked with the device's options (checkDeviceOptions).
 */
export function holdMemoryTrim(every = DEFAULT_MEMORY_TRIM_INTERVAL_MS): () => void {
  if (every === 0 || !trimFunction()) return () => undefined;
  const key = Symbol("memory trim holder");
  holders.set(key, every);
  arm();
  return () => {
    if (holders.delete(key)) arm();
  };
}

export function memoryTrimStatus(): MemoryTrimStatus {
  const available = trimFunction() !== undefined;
  const every = intervalMs();
  return { available, ...(unavailable ? { reason: unavailable } : {}), holders: holders.size, ...(every !== undefined ? { intervalMs: every } : {}), ...counts };
}
