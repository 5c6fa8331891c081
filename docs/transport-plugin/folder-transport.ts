/**
 * An example of a transport written outside this package, against its exported interface only: devices
 * that share a directory (processes on one machine, containers with a shared volume) find each other
 * through it. Each device keeps a file <device id>.json there with its address, rewritten every
 * interval; a file that is gone, or has not been rewritten within the expiry, is a device that left.
 *
 * Like mDNS, a file only claims an id (anyone who can write the directory can write one): sightings are
 * unverified, and the device proves its id in the TLS handshake when it is dialled.
 *
 * Use it from a flow's runtime settings or your own code:
 *   new Device({ identity, discovery: { transports: [folderTransport({ dir: "/shared/peer-mesh" })] } })
 */
import { EventEmitter } from "node:events";
import { promises as fs } from "node:fs";
import net from "node:net";
import path from "node:path";
import type { Duplex } from "node:stream";
// Types only: nothing of the package is loaded at run time, so the plugin does not pin its version.
import type { Transport, TransportContext, TransportEvents, TransportFactory } from "@peer-mesh/node-red-peer-mesh";

export interface FolderTransportOptions {
  /** The shared directory (created if missing). */
  dir: string;
  /** How often this device rewrites its file and reads the others'. */
  intervalMs?: number;
  /** A file not rewritten for this long belongs to a device that crashed. */
  expireMs?: number;
}

const DEVICE_ID = /^[a-z2-7]{52}$/;

export class FolderTransport extends EventEmitter<TransportEvents> implements Transport {
  readonly name = "folder";
  readonly rank = 15; // after mDNS (10), before static addresses (20)
  readonly carriesIp = true;
  private readonly intervalMs: number;
  private readonly expireMs: number;
  private readonly seen = new Set<string>();
  private timer?: NodeJS.Timeout;
  private round?: Promise<void>;
  private running = false;

  constructor(
    private readonly options: FolderTransportOptions,
    private readonly self: { id: string; address: string; name?: string },
  ) {
    super();
    this.intervalMs = options.intervalMs ?? 1_000;
    this.expireMs = options.expireMs ?? 5 * this.intervalMs;
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    await fs.mkdir(this.options.dir, { recursive: true });
    await this.tick();
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    clearInterval(this.timer);
    await this.round;
    this.seen.clear();
    // The goodbye: others see the file gone at their next read.
    await fs.rm(this.ownFile, { force: true });
  }

  connect(address: string): Duplex {
    const at = address.lastIndexOf(":");
    return net.connect({ host: address.slice(0, at).replace(/^\[(.*)\]$/, "$1"), port: Number(address.slice(at + 1)) });
  }

  private get ownFile(): string {
    return path.join(this.options.dir, `${this.self.id}.json`);
  }

  private tick(): Promise<void> {
    this.round ??= this.announceAndRead().finally(() => (this.round = undefined));
    return this.round;
  }

  private async announceAndRead(): Promise<void> {
    try {
      // Written aside and renamed, so that a reader never sees half a file.
      const temporary = `${this.ownFile}.${process.pid}.tmp`;
      await fs.writeFile(temporary, JSON.stringify({ address: this.self.address, name: this.self.name }));
      await fs.rename(temporary, this.ownFile);
      const now = Date.now();
      const present = new Set<string>();
      for (const file of await fs.readdir(this.options.dir)) {
        const id = file.endsWith(".json") ? file.slice(0, -".json".length) : "";
        if (!DEVICE_ID.test(id) || id === this.self.id) continue;
        const entry = await readEntry(path.join(this.options.dir, file), now - this.expireMs);
        if (!entry || !this.running) continue;
        present.add(id);
        this.seen.add(id);
        this.emit("found", { id, address: entry.address, name: entry.name, verified: false });
      }
      for (const id of [...this.seen]) {
        if (present.has(id) || !this.running) continue;
        this.seen.delete(id);
        this.emit("lost", id);
      }
    } catch (err) {
      if (this.running) this.emit("warning", new Error(`folder ${this.options.dir}: ${(err as Error).message}`));
    }
  }
}

/** A device's file, if it is fresh and well formed. */
async function readEntry(file: string, freshAfter: number): Promise<{ address: string; name?: string } | undefined> {
  try {
    const stat = await fs.stat(file);
    if (stat.mtimeMs < freshAfter) return undefined;
    const entry = JSON.parse(await fs.readFile(file, "utf8")) as { address?: unknown; name?: unknown };
    if (typeof entry.address !== "string" || !/^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):\d{1,5}$/.test(entry.address)) return undefined;
    return { address: entry.address, name: typeof entry.name === "string" ? entry.name.slice(0, 64) : undefined };
  } catch {
    return undefined; // removed meanwhile, or being replaced
  }
}

/** The factory a Device takes in discovery.transports: it knows the listener's port only when it starts. */
export function folderTransport(options: FolderTransportOptions): TransportFactory {
  return (context: TransportContext) => {
    const host = context.host === "0.0.0.0" || context.host === "::" ? "127.0.0.1" : context.host;
    return new FolderTransport(options, { id: context.identity.deviceId, address: `${host.includes(":") ? `[${host}]` : host}:${context.port}`, name: context.name });
  };
}
