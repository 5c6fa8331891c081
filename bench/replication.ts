import PouchDB from "pouchdb-node";
import { Device, Identity, MeshSync } from "../lib";
import { remoteDatabase } from "../lib/storage/database";
import { startCloud } from "../test/helpers/pouchdb-server";
import { freePort } from "../test/helpers/ports";
import { TempDirs } from "../test/helpers/storage";
import { median } from "./stats";

function readings(count: number): Array<{ _id: string; sensor: string; value: number; unit: string; at: string; note: string }> {
  return Array.from({ length: count }, (_, i) => ({ _id: `reading-${String(i).padStart(6, "0")}`, sensor: `line-3/machine-${i % 40}`, value: Math.round(Math.random() * 10000) / 100, unit: "celsius", at: new Date(1_700_000_000_000 + i * 1000).toISOString(), note: "x".repeat(60) }));
}

/** Devices on loopback with storage, each knowing the addresses of the ones `links` names for it. */
export async function devicesLinked(count: number, links: (i: number) => number[], dirs: TempDirs, databases: string[] = [], probeIntervalMs = 500): Promise<Device[]> {
  const identities = Array.from({ length: count }, () => Identity.generate());
  const ports = await Promise.all(identities.map(() => freePort()));
  const devices = identities.map((identity, i) => new Device({
    identity,
    port: ports[i],
    storageDir: dirs.make("peer-mesh-bench-"),
    databases,
    peers: links(i).map((j) => ({ id: identities[j].deviceId, address: `127.0.0.1:${ports[j]}` })),
    discovery: { staticProbeIntervalMs: probeIntervalMs },
  }));
  await Promise.all(devices.map((device) => device.start()));
  return devices;
}

/** A line: each device knows the previous and the next one. */
function line(count: number, dirs: TempDirs, databases: string[] = []): Promise<Device[]> {
  return devicesLinked(count, (i) => [i - 1, i + 1].filter((j) => j >= 0 && j < count), dirs, databases);
}

/**
 * 10,000 documents of about 200 bytes pushed device→device through the wire (mutual TLS, HTTP/2, ACL,
 * LevelDB at both ends) beside stock PouchDB pushing the same to pouchdb-server (LevelDB) over plain HTTP.
 */
export async function replicationRate(docs: number, rounds: number): Promise<{ ours: number; baseline: number }> {
  const dirs = new TempDirs();
  const ours: number[] = [];
  const baseline: number[] = [];
  const cloud = await startCloud([], { onDisk: true });
  try {
    for (let round = 0; round < rounds; round++) {
      const name = `bench${round}`;
      const [a, b] = await line(2, dirs, [name]);
      try {
        await a.databases.open(name).bulkDocs(readings(docs));
        const started = performance.now();
        const report = await a.databases.replicate(b.id, name, "push");
        ours.push(report.docsWritten / ((performance.now() - started) / 1000));
      } finally {
        await Promise.all([a.stop(), b.stop()]);
      }
      const local = new PouchDB(`${dirs.make("peer-mesh-bench-")}/source`);
      const remote = remoteDatabase(`${cloud.url}/${name}`, { auth: cloud.auth });
      try {
        await local.bulkDocs(readings(docs));
        await fetch(`${cloud.url}/${name}`, { method: "PUT", headers: { authorization: `Basic ${Buffer.from("admin:admin-secret").toString("base64")}` } });
        const started = performance.now();
        const result = await PouchDB.replicate(local, remote, { batch_size: 100 });
        baseline.push(result.docs_written / ((performance.now() - started) / 1000));
      } finally {
        await Promise.all([local.close(), remote.close()]);
      }
    }
  } finally {
    await cloud.stop();
    dirs.removeAll();
  }
  return { ours: Math.round(median(ours)), baseline: Math.round(median(baseline)) };
}

/** A mesh message from one end of a line to the other (1 hop, and across 2 relays), syncing "as soon as something changes". */
export async function meshLatency(samples: number): Promise<{ oneHopMs: number; twoRelaysMs: number }> {
  const dirs = new TempDirs();
  const devices = await line(4, dirs);
  const syncs = devices.map((device) => new MeshSync(device, { databases: [], direction: "both", mesh: true, policy: { intervalMs: 0 } }));
  try {
    syncs.forEach((sync) => sync.start());
    const [a, b, , d] = devices;
    const deadline = Date.now() + 30_000;
    while (!a.mesh.has(`dev:${d.id}`) || !a.mesh.has(`dev:${b.id}`)) {
      if (Date.now() > deadline) throw new Error("device documents did not spread along the line");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const time = async (to: Device): Promise<number> => {
      const times: number[] = [];
      for (let i = 0; i < samples; i++) {
        const started = performance.now();
        const arrived = new Promise<void>((resolve) => {
          const off = to.mesh.onMessage((message) => {
            if ((message.payload as { i: number }).i !== i) return;
            off();
            resolve();
          });
        });
        await a.mesh.send(to.id, { i });
        await arrived;
        times.push(performance.now() - started);
      }
      return Math.round(median(times));
    };
    return { oneHopMs: await time(b), twoRelaysMs: await time(d) };
  } finally {
    await Promise.all(syncs.map((sync) => sync.stop()));
    await Promise.all(devices.map((device) => device.stop()));
    dirs.removeAll();
  }
}
