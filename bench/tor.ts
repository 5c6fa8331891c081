import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Device, Identity, type TorStatus } from "../lib";
import { torMissing, TorTestNetwork } from "../test/helpers/tor-network";
import { median } from "./stats";

export interface TorFigures {
  /** New sender → first ack, ms: through Tor (descriptor, introduction, rendezvous, TLS) vs direct TLS on loopback. */
  firstMessage: { tor: number; direct: number };
  /** Messages per second, 32 in flight, on a warm connection. */
  rate: { tor: number; direct: number };
}

function ready(device: Device, test: (status: TorStatus) => boolean): Promise<void> {
  return new Promise((resolve) => {
    const check = (): void => {
      const status = device.torStatus;
      if (status && test(status)) {
        device.off("tor", check);
        resolve();
      }
    };
    device.on("tor", check);
    check();
  });
}

async function rate(sender: Device, to: string, count: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (next < count) {
      next += 1;
      await sender.send(to, "bench", { n: next }, { timeoutMs: 60_000 });
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  return count / ((performance.now() - started) / 1000);
}

/**
 * Tor against the direct wire, both on this machine: the Tor side runs on a private Tor network on
 * 127.0.0.1 (3 authorities, 3 relays), so the figures show what tor's circuits and cells cost without
 * the latency of real relays around the world, which on the public network adds seconds to the first
 * message and divides the rate further.
 */
export async function torVsDirect(options: { rounds: number; count: number }): Promise<TorFigures | undefined> {
  const missing = torMissing();
  if (missing) {
    console.warn(`${missing}: the Tor benchmark is skipped`);
    return undefined;
  }
  const network = await TorTestNetwork.start();
  const dirs: string[] = [];
  const devices: Device[] = [];
  const torDevice = async (): Promise<Device> => {
    const storageDir = await fs.mkdtemp(path.join(os.tmpdir(), "peer-mesh-bench-tor-"));
    dirs.push(storageDir);
    const device = new Device({ identity: Identity.generate(), storageDir, discovery: { staticProbeIntervalMs: 0, tor: { only: true, launch: { torrc: network.clientTorrc } } } });
    device.authorize = () => true;
    devices.push(device);
    await device.start();
    return device;
  };
  try {
    const receiver = await torDevice();
    receiver.onMessage("#", () => undefined);
    await ready(receiver, (status) => status.published);
    const onion = receiver.torStatus!.onion!;
    const direct = new Device({ identity: Identity.generate() });
    direct.authorize = () => true;
    direct.onMessage("#", () => undefined);
    devices.push(direct);
    const directPort = await direct.start();

    const firstTor: number[] = [];
    const firstDirect: number[] = [];
    let warmTor: Device | undefined;
    let warmDirect: Device | undefined;
    for (let round = 0; round < options.rounds; round++) {
      // A new device each round: its tor has no circuit to the receiver yet (bootstrap is not timed).
      const sender = await torDevice();
      await ready(sender, (status) => status.state === "ready");
      sender.addKnownPeer({ id: receiver.id, address: onion });
      let started = performance.now();
      await sender.send(receiver.id, "first", round, { timeoutMs: 60_000 });
      firstTor.push(performance.now() - started);
      warmTor = sender;

      const plain = new Device({ identity: Identity.generate(), peers: [{ id: direct.id, address: `127.0.0.1:${directPort}` }], discovery: { staticProbeIntervalMs: 0 } });
      devices.push(plain);
      await plain.start();
      started = performance.now();
      await plain.send(direct.id, "first", round);
      firstDirect.push(performance.now() - started);
      warmDirect = plain;
    }
    const torRate = await rate(warmTor!, receiver.id, options.count);
    const directRate = await rate(warmDirect!, direct.id, options.count);
    return { firstMessage: { tor: median(firstTor), direct: median(firstDirect) }, rate: { tor: torRate, direct: directRate } };
  } finally {
    await Promise.all(devices.map((device) => device.stop()));
    await network.stop();
    await Promise.all(dirs.map((dir) => fs.rm(dir, { recursive: true, force: true })));
  }
}

if (require.main === module) {
  torVsDirect({ rounds: 3, count: 2000 }).then((figures) => console.log(JSON.stringify(figures, null, 2)), (err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
