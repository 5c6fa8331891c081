import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Identity, openDatabase } from "../lib";
import { startDemo } from "../scripts/demo";
import { freePort } from "../test/helpers/ports";

export interface IdentityMemory {
  bareMb: number;
  withIdentitiesMb: number;
  afterRedeploysMb: number;
  perIdentityMb: number;
  identities: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function rssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

/** The median of five readings a second apart, at the end of a quiet spell. */
async function settledRssMb(pid: number, settleMs: number): Promise<number> {
  await sleep(Math.max(0, settleMs - 5_000));
  const readings: number[] = [];
  for (let i = 0; i < 5; i++) {
    readings.push(rssMb(pid));
    await sleep(1_000);
  }
  return readings.sort((a, b) => a - b)[2];
}

/**
 * The resident memory idle identities add to a Node-RED process: a bare runtime with this package
 * installed, measured after it settled; then `count` identities, each with its storage, one database of
 * 2,000 documents and a peer-receive; then the same after ten full redeploys (each closes and starts every
 * identity). The runtime collects garbage every second (gc-often), so the figures are of what is held.
 */
export async function identityMemory(count: number, settleMs: number): Promise<IdentityMemory> {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-identity-rss-"));
  const identities = Array.from({ length: count }, () => Identity.generate());
  // Each identity's database, written before Node-RED starts, where the identity will find it.
  for (const identity of identities) {
    const db = openDatabase(path.join(userDir, "peer-mesh", identity.deviceId, "databases"), "readings");
    await db.bulkDocs(Array.from({ length: 2_000 }, (_, n) => ({ _id: `reading-${n}`, celsius: 20 + (n % 50) / 10, pad: "x".repeat(150) })));
    await db.close();
  }
  const red = await startDemo({ userDir, port: await freePort(), stdio: "pipe", deployDemo: false, nodeArgs: ["--expose-gc", "-r", path.join(__dirname, "gc-often.js")] });
  try {
    const pid = red.child.pid!;
    const deploy = async (flows: object[]): Promise<void> => {
      const res = await fetch(`${red.url}/flows`, { method: "POST", headers: { "content-type": "application/json", "Node-RED-Deployment-Type": "full" }, body: JSON.stringify(flows) });
      if (res.status !== 204) throw new Error(`deploy failed: ${res.status} ${await res.text()}`);
    };
    await deploy([{ id: "tab", type: "tab", label: "memory" }]);
    const bareMb = await settledRssMb(pid, settleMs);
    const flows: object[] = [{ id: "tab", type: "tab", label: "memory" }];
    for (const [i, identity] of identities.entries()) {
      flows.push(
        { id: `id-${i}`, type: "identity-config", name: `device ${i}`, host: "127.0.0.1", port: 0, databases: "readings", credentials: { privateKey: identity.privateKeyPem, certificate: identity.certificatePem } },
        { id: `in-${i}`, type: "peer-receive", z: "tab", identity: `id-${i}`, topic: "#", streamOutput: "chunks", chunkKb: 64, maxBufferMb: 64, wires: [[]] },
      );
    }
    await deploy(flows);
    const withIdentitiesMb = await settledRssMb(pid, settleMs);
    for (let i = 0; i < 10; i++) {
      await deploy(flows);
      await sleep(1_000);
    }
    const afterRedeploysMb = await settledRssMb(pid, settleMs);
    return { bareMb, withIdentitiesMb, afterRedeploysMb, perIdentityMb: (withIdentitiesMb - bareMb) / count, identities: count };
  } finally {
    await red.stop();
    fs.rmSync(userDir, { recursive: true, force: true });
  }
}
