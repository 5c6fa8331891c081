import { Readable } from "node:stream";
import { Device, Identity, KnownPeer, MeshSync } from "../../lib";
import { TempDirs } from "./storage";

/** Two devices on 127.0.0.1 that know each other: a sends, b receives. Stop them with stopAll. */
export async function devicePair(options: { bPeers?: KnownPeer[]; maxMessageBytes?: number } = {}): Promise<{ a: Device; b: Device }> {
  const aIdentity = Identity.generate();
  const b = new Device({
    identity: Identity.generate(),
    peers: options.bPeers ?? [{ id: aIdentity.deviceId, name: "a" }],
    limits: options.maxMessageBytes ? { maxMessageBytes: options.maxMessageBytes } : undefined,
  });
  const port = await b.start();
  const a = new Device({ identity: aIdentity, peers: [{ id: b.id, name: "b", address: `127.0.0.1:${port}` }] });
  await a.start();
  return { a, b };
}

export async function stopAll(...devices: Array<Device | undefined>): Promise<void> {
  await Promise.all(devices.map((device) => device?.stop()));
}

/** A Readable of `total` bytes in `chunk`-sized pieces, made lazily so the source itself holds no memory. */
export function byteSource(total: number, chunk = 64 * 1024, fill = (i: number) => i & 0xff): Readable {
  let sent = 0;
  let n = 0;
  return new Readable({
    read() {
      if (sent >= total) return void this.push(null);
      const size = Math.min(chunk, total - sent);
      sent += size;
      this.push(Buffer.alloc(size, fill(n++)));
    },
  });
}

/** Resolves with the value of the first call to the returned callback. */
export function nextCall<T>(): { callback: (value: T) => void; value: Promise<T> } {
  let callback!: (value: T) => void;
  const value = new Promise<T>((resolve) => (callback = resolve));
  return { callback, value };
}

/**
 * Devices, their mesh syncs and their storage directories for one suite, all stopped and removed after
 * each test (syncs first, then devices, then the directories), even when the test failed.
 */
export function useDevices(): { devices: Device[]; syncs: MeshSync[]; dirs: TempDirs; meshOnly: (...among: Device[]) => void } {
  const devices: Device[] = [];
  const syncs: MeshSync[] = [];
  const dirs = new TempDirs();
  afterEach(async () => {
    await Promise.all(syncs.splice(0).map((sync) => sync.stop()));
    await Promise.all(devices.splice(0).map((device) => device.stop()));
    dirs.removeAll();
  });
  /** Starts a mesh-only sync on each device (no databases, both ways, at once on every change); stopped after the test. */
  const meshOnly = (...among: Device[]): void => {
    for (const device of among) {
      const sync = new MeshSync(device, { databases: [], direction: "both", mesh: true, policy: { intervalMs: 0 } });
      syncs.push(sync);
      sync.start();
    }
  };
  return { devices, syncs, dirs, meshOnly };
}
