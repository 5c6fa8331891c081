import { randomBytes } from "node:crypto";
import { Device, MeshMode, MeshSync } from "../lib";
import { TempDirs } from "../test/helpers/storage";
import { devicesLinked } from "./replication";

const COLUMNS = 6;
const ROWS = 5;
const MAX_ROUNDS = 40;

/** Sender and recipient (grid indexes): 9, 4, 3, 7 and 2 hops apart. */
const PAIRS: Array<[number, number]> = [
  [0, 29],
  [3, 20],
  [7, 10],
  [25, 4],
  [14, 21],
];

/** Bytes moved by one message in a 30-device mesh, per mode (mean over PAIRS), beyond what idle rounds cost. */
export interface MeshBytes {
  directed: number;
  flood: number;
  /** Devices that stored a copy, the recipient included (mean over PAIRS). */
  directedCopies: number;
  floodCopies: number;
  idleRoundBytes: number;
}

/**
 * 30 devices on a 6×5 grid (each knows the addresses of up to 4 neighbours), syncing in lock-step rounds
 * so the traffic of one message can be told apart: a 4 KB message between each pair in PAIRS, then
 * rounds until it was delivered, its ack is back at the sender and nothing moves any more; the bytes of
 * as many idle rounds are subtracted. Flood stops where the ack overtakes it (relays purge acked copies),
 * which is the real behaviour, so the ratio is what a deployment sees.
 */
export async function meshBytes(): Promise<MeshBytes> {
  const count = COLUMNS * ROWS;
  const neighbours = (i: number): number[] => {
    const x = i % COLUMNS;
    const y = Math.floor(i / COLUMNS);
    return [
      [x - 1, y],
      [x + 1, y],
      [x, y - 1],
      [x, y + 1],
    ]
      .filter(([nx, ny]) => nx >= 0 && nx < COLUMNS && ny >= 0 && ny < ROWS)
      .map(([nx, ny]) => ny * COLUMNS + nx);
  };
  const dirs = new TempDirs();
  const devices = await devicesLinked(count, neighbours, dirs);
  // An hour between rounds: every round below is started by hand.
  const syncs = devices.map((device) => new MeshSync(device, { databases: [], direction: "both", mesh: true, policy: { intervalMs: 3_600_000 } }));
  let bytes = 0;
  let docs = 0;
  for (const sync of syncs) {
    sync.on("sync", (report) => {
      bytes += report.bytesSent + report.bytesReceived;
      docs += report.docsWritten;
    });
  }
  const round = async (): Promise<{ bytes: number; docs: number }> => {
    const before = { bytes, docs };
    syncs.forEach((sync) => sync.syncAll());
    await Promise.all(syncs.map((sync) => sync.settled()));
    return { bytes: bytes - before.bytes, docs: docs - before.docs };
  };
  try {
    syncs.forEach((sync) => sync.start());
    await Promise.all(devices.map((device, i) => inRange(device, neighbours(i).length)));
    // Every device learns every other's device document (keys and routes), then the mesh falls quiet.
    for (let rounds = 0; ; rounds++) {
      if (rounds > 3 * MAX_ROUNDS) throw new Error("device documents never settled across the grid");
      const moved = await round();
      if (moved.docs === 0 && devices.every((device) => devices.every((other) => device.mesh.has(`dev:${other.id}`)))) break;
    }
    const idle = Math.max((await round()).bytes, (await round()).bytes);

    const measure = async (mode: MeshMode, [fromIndex, toIndex]: [number, number]): Promise<{ bytes: number; copies: number }> => {
      const [from, to] = [devices[fromIndex], devices[toIndex]];
      const holders = new Set<string>();
      let sent: { id: string } | undefined;
      const onStored = devices.map((device) => {
        const listener = ({ id }: { id: string }): void => void (id === sent?.id && holders.add(device.id));
        device.mesh.on("stored", listener);
        return () => device.mesh.off("stored", listener);
      });
      let delivered = false;
      let acked = false;
      const offMessage = to.mesh.onMessage(() => (delivered = true));
      const onAcked = (): void => void (acked = true);
      from.mesh.on("acked", onAcked);
      const start = bytes;
      sent = await from.mesh.send(to.id, randomBytes(4096), { mode });
      let rounds = 0;
      for (;;) {
        const moved = await round();
        rounds++;
        if ((delivered && acked && moved.docs === 0) || rounds >= MAX_ROUNDS) break;
      }
      offMessage();
      from.mesh.off("acked", onAcked);
      onStored.forEach((off) => off());
      if (!delivered || !acked) throw new Error(`${mode}: the message was not delivered and acknowledged within ${MAX_ROUNDS} rounds`);
      return { bytes: bytes - start - idle * rounds, copies: holders.size };
    };
    const mean = async (mode: MeshMode): Promise<{ bytes: number; copies: number }> => {
      const all: Array<{ bytes: number; copies: number }> = [];
      for (const pair of PAIRS) all.push(await measure(mode, pair));
      return { bytes: Math.round(all.reduce((sum, one) => sum + one.bytes, 0) / all.length), copies: all.reduce((sum, one) => sum + one.copies, 0) / all.length };
    };
    const directed = await mean("directed");
    const flood = await mean("flood");
    return { directed: directed.bytes, flood: flood.bytes, directedCopies: directed.copies, floodCopies: flood.copies, idleRoundBytes: idle };
  } finally {
    await Promise.all(syncs.map((sync) => sync.stop()));
    await Promise.all(devices.map((device) => device.stop()));
    dirs.removeAll();
  }
}

async function inRange(device: Device, neighbours: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (device.peerTable.list().length < neighbours) {
    if (Date.now() > deadline) throw new Error("neighbours not in range");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

if (require.main === module) {
  meshBytes().then((figures) => console.log(figures), (err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
