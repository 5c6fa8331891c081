import { randomBytes } from "node:crypto";
import { Device, MeshMode, MeshSync } from "../lib";
import { TempDirs } from "../test/helpers/storage";
import { devicesLinked } from "./replication";

const MAX_ROUNDS = 60;

export interface Grid {
  columns: number;
  rows: number;
  /** Sender and recipient (grid indexes). */
  pairs: Array<[number, number]>;
}

/** 30 devices, 6×5; pairs 9, 4, 3, 7 and 2 hops apart. */
export const GRID_30: Grid = {
  columns: 6,
  rows: 5,
  pairs: [
    [0, 29],
    [3, 20],
    [7, 10],
    [25, 4],
    [14, 21],
  ],
};

/** 100 devices, 10×10; pairs 18, 9, 10, 6 and 2 hops apart. */
export const GRID_100: Grid = {
  columns: 10,
  rows: 10,
  pairs: [
    [0, 99],
    [5, 95],
    [90, 9],
    [33, 66],
    [44, 55],
  ],
};

/** What one message costs in a mode (mean over the grid's pairs), beyond what idle rounds cost. */
export interface MeshCost {
  bytes: number;
  /** Devices that stored a copy, the recipient included. */
  copies: number;
  /** Sync rounds until the message was delivered (every device syncs with its neighbours once a round). */
  roundsToDeliver: number;
  /** Wall time from send to delivery, all devices in this one process. */
  msToDeliver: number;
  /** Sync rounds until its ack was back at the sender and nothing moved any more. */
  roundsToSettle: number;
}

export interface MeshBytes {
  devices: number;
  directed: MeshCost;
  flood: MeshCost;
  idleRoundBytes: number;
  /** Wall time of one idle round of the whole grid. */
  idleRoundMs: number;
}

/**
 * Devices on a grid (each knows the addresses of up to 4 neighbours), syncing in lock-step rounds so the
 * traffic of one message can be told apart: a 4 KB message between each of the grid's pairs, then
 * rounds until it was delivered, its ack is back at the sender and nothing moves any more; the bytes of
 * as many idle rounds are subtracted. Flood stops where the ack overtakes it (relays purge acked copies),
 * which is the real behaviour, so the ratio is what a deployment sees.
 */
export async function meshBytes(grid: Grid = GRID_30, progress: (line: string) => void = () => undefined): Promise<MeshBytes> {
  const { columns, rows } = grid;
  const count = columns * rows;
  const neighbours = (i: number): number[] => {
    const x = i % columns;
    const y = Math.floor(i / columns);
    return [
      [x - 1, y],
      [x + 1, y],
      [x, y - 1],
      [x, y + 1],
    ]
      .filter(([nx, ny]) => nx >= 0 && nx < columns && ny >= 0 && ny < rows)
      .map(([nx, ny]) => ny * columns + nx);
  };
  const dirs = new TempDirs();
  // Every device probes each neighbour's address with a TLS handshake: at 100 devices, twice a second
  // would take both cores of this machine, so the larger grid probes at the default interval.
  const devices = await devicesLinked(count, neighbours, dirs, [], count > 30 ? 5_000 : 500);
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
      progress(`${count} devices: settling round ${rounds + 1}, ${moved.docs} documents moved`);
      if (moved.docs === 0 && devices.every((device) => devices.every((other) => device.mesh.has(`dev:${other.id}`)))) break;
    }
    const idleStarted = performance.now();
    const idle = Math.max((await round()).bytes, (await round()).bytes);
    const idleRoundMs = (performance.now() - idleStarted) / 2;

    const measure = async (mode: MeshMode, [fromIndex, toIndex]: [number, number]): Promise<MeshCost> => {
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
      let deliveredAt = 0;
      let roundsToDeliver = 0;
      const offMessage = to.mesh.onMessage(() => {
        delivered = true;
        deliveredAt = performance.now();
      });
      const onAcked = (): void => void (acked = true);
      from.mesh.on("acked", onAcked);
      const start = bytes;
      const sentAt = performance.now();
      sent = await from.mesh.send(to.id, randomBytes(4096), { mode });
      let rounds = 0;
      let docsMoved = 0;
      for (;;) {
        const moved = await round();
        rounds++;
        docsMoved += moved.docs;
        if (delivered && roundsToDeliver === 0) roundsToDeliver = rounds;
        if ((delivered && acked && moved.docs === 0) || rounds >= MAX_ROUNDS) break;
      }
      offMessage();
      from.mesh.off("acked", onAcked);
      onStored.forEach((off) => off());
      if (!delivered || !acked) throw new Error(`${mode}: the message was not delivered and acknowledged within ${MAX_ROUNDS} rounds`);
      const cost = bytes - start - idle * rounds;
      // Bytes are counted per sync, not per document: a document that moves beside the message (a device
      // document) is charged to it, and shows here as more documents than the message and its ack.
      progress(`${count} devices, ${mode} ${fromIndex}→${toIndex}: delivered in ${roundsToDeliver} rounds, settled in ${rounds}, ${docsMoved} document writes, ${Math.round(cost / 1024)} KB`);
      return { bytes: cost, copies: holders.size, roundsToDeliver, msToDeliver: deliveredAt - sentAt, roundsToSettle: rounds };
    };
    const mean = async (mode: MeshMode): Promise<MeshCost> => {
      const all: MeshCost[] = [];
      for (const pair of grid.pairs) all.push(await measure(mode, pair));
      const average = (pick: (one: MeshCost) => number): number => all.reduce((sum, one) => sum + pick(one), 0) / all.length;
      return { bytes: Math.round(average((one) => one.bytes)), copies: average((one) => one.copies), roundsToDeliver: average((one) => one.roundsToDeliver), msToDeliver: Math.round(average((one) => one.msToDeliver)), roundsToSettle: average((one) => one.roundsToSettle) };
    };
    const directed = await mean("directed");
    const flood = await mean("flood");
    return { devices: count, directed, flood, idleRoundBytes: idle, idleRoundMs: Math.round(idleRoundMs) };
  } finally {
    await Promise.all(syncs.map((sync) => sync.stop()));
    await Promise.all(devices.map((device) => device.stop()));
    dirs.removeAll();
  }
}

async function inRange(device: Device, neighbours: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (device.peerTable.list().length < neighbours) {
    if (Date.now() > deadline) throw new Error("neighbours not in range");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

if (require.main === module) {
  const grid = process.argv.includes("--100") ? GRID_100 : GRID_30;
  meshBytes(grid, (line) => console.error(line)).then((figures) => console.log(JSON.stringify(figures)), (err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
