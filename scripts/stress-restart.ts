/**
 * Restarts a relay on the same storage, in one process, again and again while its neighbours replicate
 * with it: what a Node-RED full deploy does to an identity. It is the reproduction for native crashes of
 * the storage layer (see the README's Faults section), so it stops at nothing but a crash, its round
 * count or its time limit.
 *
 *   node dist/scripts/stress-restart.js [--rounds 200] [--minutes 10] [--overlap]
 *
 * --overlap starts the new relay before the old one has finished stopping, as Node-RED does when a
 * node's close handler takes longer than its 15 s close timeout.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Device, DeviceOptions, Identity, MeshSync } from "../lib";

interface Args {
  rounds: number;
  minutes: number;
  overlap: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { rounds: 200, minutes: 10, overlap: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--rounds") args.rounds = Number(argv[++i]);
    else if (argv[i] === "--minutes") args.minutes = Number(argv[++i]);
    else if (argv[i] === "--overlap") args.overlap = true;
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  if (!Number.isInteger(args.rounds) || args.rounds < 1) throw new Error("--rounds takes a whole number");
  if (!(args.minutes > 0 && args.minutes <= 120)) throw new Error("--minutes takes a number up to 120");
  return args;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Running {
  device: Device;
  sync: MeshSync;
}

async function startDevice(options: DeviceOptions): Promise<Running> {
  const device = new Device(options);
  await device.start();
  const sync = new MeshSync(device, { databases: ["readings"], direction: "both", mesh: true, policy: { intervalMs: 0 } });
  sync.on("failed", () => undefined); // the relay going away mid-session is the point
  sync.start();
  return { device, sync };
}

async function stopDevice(running: Running): Promise<void> {
  await running.sync.stop();
  await running.device.stop();
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "peer-mesh-stress-"));
  const [ia, ib, ic] = [Identity.generate(), Identity.generate(), Identity.generate()];
  const warnings = new Map<string, number>();
  const noteWarning = (err: Error): void => {
    const key = err.message.replace(/[0-9a-f]{16,}/g, "<id>").slice(0, 120);
    warnings.set(key, (warnings.get(key) ?? 0) + 1);
  };
  const common = { databases: ["readings"], discovery: { staticProbeIntervalMs: 300 } };
  const a = await startDevice({ ...common, identity: ia, name: "a", storageDir: path.join(work, "a"), port: 0 });
  const c = await startDevice({ ...common, identity: ic, name: "c", storageDir: path.join(work, "c"), port: 0 });
  const bOptions = (port: number): DeviceOptions => ({
    ...common,
    identity: ib,
    name: "b",
    storageDir: path.join(work, "b"),
    port,
    peers: [
      { id: ia.deviceId, name: "a", address: `127.0.0.1:${a.device.port}` },
      { id: ic.deviceId, name: "c", address: `127.0.0.1:${c.device.port}` },
    ],
  });
  let b = await startDevice(bOptions(0));
  for (const end of [a, c]) end.device.addKnownPeer({ id: ib.deviceId, name: "b", address: `127.0.0.1:${b.device.port}` });
  for (const running of [a, b, c]) running.device.on("warning", noteWarning);

  // Steady work on both sides of the relay: documents into the replicated database, mesh messages A → C.
  let writing = true;
  let written = 0;
  const writers = [a, c].map(async (end, side) => {
    while (writing) {
      await end.device.databases.open("readings").put({ _id: `${side}-${written++}`, at: Date.now(), pad: "x".repeat(200) }).catch(noteWarning);
      if (side === 0) await end.device.mesh.send(ic.deviceId, { n: written }).catch(noteWarning);
      await sleep(15);
    }
  });

  const deadline = Date.now() + args.minutes * 60_000;
  let round = 0;
  for (; round < args.rounds && Date.now() < deadline; round++) {
    await sleep(100 + Math.random() * 900);
    const old = b;
    if (args.overlap) {
      // The new relay comes up on another port while the old one is still stopping.
      const stopping = stopDevice(old);
      await sleep(Math.random() * 100);
      b = await startDevice(bOptions(0)).catch(async (err: Error) => {
        noteWarning(err);
        await stopping;
        return startDevice(bOptions(0));
      });
      await stopping;
    } else {
      const port = old.device.port ?? 0;
      await stopDevice(old);
      b = await startDevice(bOptions(port));
    }
    b.device.on("warning", noteWarning);
    if ((round + 1) % 10 === 0) console.log(`round ${round + 1}: ${written} documents written, rss ${(process.memoryUsage().rss / 1048576).toFixed(0)} MB`);
  }
  writing = false;
  await Promise.all(writers);
  await Promise.all([a, b, c].map(stopDevice));
  fs.rmSync(work, { recursive: true, force: true });
  console.log(`${round} restarts without a crash${args.overlap ? " (overlapping)" : ""}; ${written} documents written`);
  for (const [message, count] of [...warnings].sort((x, y) => y[1] - x[1]).slice(0, 15)) console.log(`  ${count}× ${message}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
