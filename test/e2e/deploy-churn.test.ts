import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import PouchDB from "pouchdb-node";
import should from "should";
import { Identity } from "../../lib";
import { RunningDemo, startDemo } from "../../scripts/demo";
import { packFromCleanCopy } from "../helpers/pack";
import { freePort } from "../helpers/ports";

const redJs = process.env.NODE_RED_RUNTIME ? path.join(path.dirname(process.env.NODE_RED_RUNTIME), "..", "red.js") : undefined;
/** Full deploys in all (and a "nodes" deploy after every fourth); `npm run churn` runs the long version (200). */
const DEPLOYS = Number(process.env.PEER_MESH_CHURN_DEPLOYS ?? 12);
/** What must never appear in either Node-RED's log. */
const STORAGE_TROUBLE = /LOCK|database is not open|Database is not open|not opened|Close timed out|corrupted|Segmentation|FATAL/;

interface Side {
  name: string;
  identity: Identity;
  port: number;
  dir: string;
}

/** One process's flow (node ids differ from every string value: Node-RED reads a value equal to a node id as a reference): messages, a stream every 3 s and documents to the other side, each outcome appended to a file. */
function flowOf(self: Side, other: Side, generation: number): Array<Record<string, unknown>> {
  const file = (id: string, name: string, wires: string[][] = []): Record<string, unknown> => ({ id: `file-${id}`, type: "file", z: "tab", name, filename: path.join(self.dir, `${name}.txt`), filenameType: "str", appendNewline: true, createDir: true, overwriteFile: "false", encoding: "utf8", wires });
  const fn = (id: string, func: string, wires: string[][]): Record<string, unknown> => ({ id, type: "function", z: "tab", func, outputs: 1, wires });
  return [
    { id: "tab", type: "tab", label: "churn" },
    {
      id: "me",
      type: "identity-config",
      name: self.name,
      host: "127.0.0.1",
      port: self.port,
      peers: [{ id: other.identity.deviceId, name: other.name, address: `127.0.0.1:${other.port}` }],
      databases: "readings",
      credentials: { privateKey: self.identity.privateKeyPem, certificate: self.identity.certificatePem },
    },
    // Messages: ten a second, each with its own id; the ack's id goes to acked.txt.
    // A "nodes" deploy renames this inject: only it restarts.
    { id: "c-tick", type: "inject", z: "tab", name: `tick ${generation}`, props: [{ p: "payload" }], payload: "", payloadType: "date", repeat: "0.1", once: true, onceDelay: "0.5", wires: [["c-make-msg"]] },
    fn("c-make-msg", `msg.messageId = "${self.name}-" + Date.now() + "-" + Math.floor(Math.random() * 1e9); msg.payload = { id: msg.messageId }; return msg;`, [["c-send"]]),
    { id: "c-send", type: "peer-send", z: "tab", identity: "me", peer: other.name, topic: "tick", timeout: 10, partsAsStream: true, wires: [["c-ack-line"]] },
    fn("c-ack-line", `msg.payload = msg.payload.id + (msg.payload.duplicate ? " duplicate" : ""); return msg;`, [["file-acked"]]),
    file("acked", "acked"),
    // Straight into the file node, so that the check measures what peer receive promises: the ack waits
    // until the nodes wired to it took the msg. A node after those is Node-RED's business: a deploy can
    // drop a msg between any two nodes.
    { id: "c-receive", type: "peer-receive", z: "tab", identity: "me", topic: "tick", streamOutput: "chunks", chunkKb: 64, maxBufferMb: 64, wires: [["file-received"]] },
    file("received", "received"),
    // A 256 KiB stream every 3 s, sent as a sequence of parts.
    { id: "c-blob-tick", type: "inject", z: "tab", props: [{ p: "payload" }], payload: "", payloadType: "date", repeat: "3", once: true, onceDelay: "1", wires: [["c-make-blob"]] },
    fn("c-make-blob", `msg.payload = Buffer.alloc(262144, 7); return msg;`, [["c-split"]]),
    { id: "c-split", type: "split", z: "tab", splt: "16384", spltType: "len", arraySplt: 1, arraySpltType: "len", stream: false, addname: "", wires: [["c-send-blob"]] },
    { id: "c-send-blob", type: "peer-send", z: "tab", identity: "me", peer: other.name, topic: "blob", timeout: 10, partsAsStream: true, wires: [["c-blob-ack-line"]] },
    fn("c-blob-ack-line", `msg.payload = String(msg.payload.bytes); return msg;`, [["file-streams-acked"]]),
    file("streams-acked", "streams-acked"),
    { id: "c-receive-blob", type: "peer-receive", z: "tab", identity: "me", topic: "blob", streamOutput: "buffer", chunkKb: 64, maxBufferMb: 64, wires: [["c-blob-line"]] },
    fn("c-blob-line", `msg.payload = String(msg.payload.length); return msg;`, [["file-streams-received"]]),
    file("streams-received", "streams-received"),
    // Documents: two a second into "readings", replicated both ways; each stored id goes to written.txt with its time.
    { id: "c-doc-tick", type: "inject", z: "tab", props: [{ p: "payload" }], payload: "", payloadType: "date", repeat: "0.5", once: true, onceDelay: "0.5", wires: [["c-make-doc"]] },
    fn("c-make-doc", `msg.database = "readings"; msg.payload = { _id: "${self.name}-" + Date.now() + "-" + Math.floor(Math.random() * 1e9), at: Date.now() }; return msg;`, [["c-sync"]]),
    { id: "c-sync", type: "mesh-sync", z: "tab", identity: "me", databases: "readings", direction: "both", mesh: true, relay: true, interval: 0, maxDocs: 100, maxKb: 4096, mode: "flood", ttl: 86400, priority: 4, fallback: 60, quotaDocs: 10000, quotaMb: 256, minBattery: 20, cloudDatabase: "peer-mesh", wires: [[], ["c-stored-line"]] },
    { id: "c-stored-line", type: "function", z: "tab", func: `if (msg.topic !== "stored") return null; msg.payload = Date.now() + " " + msg.payload.id; return msg;`, outputs: 1, wires: [["file-written"]] },
    file("written", "written"),
  ];
}

function lines(file: string): string[] {
  return fs.existsSync(file) ? fs.readFileSync(file, "utf8").split("\n").filter((line) => line.length > 0) : [];
}

/**
 * Deploy churn in real Node-RED, installed from the packed tarball: two processes, each with an identity,
 * sending each other messages (10/s), a stream every 3 s and documents (2/s, replicated both ways with
 * mesh-sync), while full deploys (every node restarts, LevelDB included) and "nodes" deploys (one node
 * changed) alternate between the two at random 0.5–3 s intervals. Afterwards: the same two processes,
 * no storage trouble in their logs, every acknowledged message delivered once, every document written
 * before the last 10 s on the other side, and traffic still flowing.
 */
describe("deploy churn: two Node-RED processes redeployed under traffic", function () {
  this.timeout(300_000 + DEPLOYS * 5_000);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "peer-mesh-churn-"));
  const running: Array<{ side: Side; red: RunningDemo; log: { text: string } }> = [];

  before(function () {
    // The suite's time budget (under 30 minutes on 2 cores) holds the short version once: it runs on the Node-RED 4.1 pass, and
    // `npm run churn` (200 deploys) takes any runtime (NODE_RED_RUNTIME) for the long one.
    if (process.env.NODE_RED_RUNTIME && process.env.PEER_MESH_CHURN_DEPLOYS === undefined) {
      console.log("      skipped on the Node-RED 5 pass (time budget): `PEER_MESH_CHURN_DEPLOYS=12` runs it there");
      this.skip();
    }
  });

  after(async () => {
    await Promise.all(running.map(({ red }) => red.stop()));
    fs.rmSync(work, { recursive: true, force: true });
  });

  async function deploy(red: RunningDemo, flows: object[], type: "full" | "nodes"): Promise<void> {
    const res = await fetch(`${red.url}/flows`, { method: "POST", headers: { "content-type": "application/json", "Node-RED-Deployment-Type": type }, body: JSON.stringify(flows) });
    should(res.status).equal(204, await res.text());
  }

  it(`survives ${DEPLOYS} deploys alternating between the two, and nothing acknowledged or stored is lost`, async () => {
    // Installed as a user installs a release: the packed tarball, npm-installed into the first user
    // directory, the same install copied into the second.
    const { tarball } = packFromCleanCopy(work);
    const sides: Side[] = [];
    for (const name of ["alpha", "beta"]) {
      const dir = path.join(work, name);
      fs.mkdirSync(dir, { recursive: true });
      sides.push({ name, identity: Identity.generate(), port: await freePort(), dir });
    }
    fs.writeFileSync(path.join(sides[0].dir, "package.json"), JSON.stringify({ name: "churn-user", private: true }));
    execFileSync("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", tarball], { cwd: sides[0].dir, stdio: "ignore" });
    fs.cpSync(path.join(sides[0].dir, "node_modules"), path.join(sides[1].dir, "node_modules"), { recursive: true, verbatimSymlinks: true });
    for (const side of sides) {
      const red = await startDemo({ userDir: side.dir, port: await freePort(), stdio: "pipe", redJs, bare: true });
      const log = { text: "" };
      for (const stream of [red.child.stdout, red.child.stderr]) stream?.on("data", (chunk: Buffer) => void (log.text += chunk.toString()));
      running.push({ side, red, log });
    }
    const generation = [0, 0];
    const flows = (i: number): object[] => flowOf(sides[i], sides[1 - i], generation[i]);
    await Promise.all(running.map(({ red }, i) => deploy(red, flows(i), "full")));
    const pids = running.map(({ red }) => red.child.pid);

    // Traffic first flows both ways.
    const deadline = Date.now() + 60_000;
    while (sides.some((side) => lines(path.join(side.dir, "acked.txt")).length < 10) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 250));
    for (const [i, side] of sides.entries()) should(lines(path.join(side.dir, "acked.txt")).length).be.aboveOrEqual(10, `${side.name}'s messages were not acknowledged before the churn began:\n${running[i].log.text.slice(-3000)}`);

    const kinds = { full: 0, nodes: 0 };
    const pause = (): Promise<unknown> => new Promise((resolve) => setTimeout(resolve, 500 + Math.random() * 2_500));
    for (let n = 0; n < DEPLOYS; n++) {
      await pause();
      const i = n % 2;
      await deploy(running[i].red, flows(i), "full");
      kinds.full++;
      if (n % 4 === 3) {
        // Between the full ones, a "nodes" deploy that changes one node on the other side.
        await pause();
        generation[1 - i]++;
        await deploy(running[1 - i].red, flows(1 - i), "nodes");
        kinds.nodes++;
      }
    }
    console.log(`      ${kinds.full} full and ${kinds.nodes} "nodes" deploys`);

    // Traffic still flows after the last deploy, both ways.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const ackedBefore = sides.map((side) => lines(path.join(side.dir, "acked.txt")).length);
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    const settledAt = Date.now();
    for (const [i, side] of sides.entries()) should(lines(path.join(side.dir, "acked.txt")).length).be.above(ackedBefore[i] + 20, `${side.name}'s messages stopped flowing`);

    // The same two processes, and nothing in their logs about storage.
    for (const [i, { red, log, side }] of running.entries()) {
      should(red.child.exitCode).equal(null, `${side.name}'s Node-RED exited:\n${log.text.slice(-4000)}`);
      should(red.child.pid).equal(pids[i]);
      should(log.text).not.match(STORAGE_TROUBLE, `${side.name}'s log:\n${log.text.match(new RegExp(`.*(${STORAGE_TROUBLE.source}).*`))?.[0]}`);
    }
    // How often a deploy dropped an acknowledged message on its way into the flow and it was handed over again.
    const handedOver = await Promise.all(running.map(async ({ red }) => /peer_mesh_redelivered_total\{[^}]*\} (\d+)/.exec(await (await fetch(`${red.url}/peer-mesh/metrics`)).text())?.[1] ?? "?"));
    await Promise.all(running.map(({ red }) => red.stop()));

    for (const [i, side] of sides.entries()) {
      const other = sides[1 - i];
      // Every acknowledged message reached the other side's flow once.
      const acked = lines(path.join(side.dir, "acked.txt")).filter((line) => !line.endsWith(" duplicate"));
      const received = lines(path.join(other.dir, "received.txt")).map((line) => (JSON.parse(line) as { id: string }).id);
      const counts = new Map<string, number>();
      for (const id of received) counts.set(id, (counts.get(id) ?? 0) + 1);
      const missing = acked.filter((id) => !counts.has(id));
      const twice = acked.filter((id) => (counts.get(id) ?? 0) > 1);
      should(missing).eql([], `${missing.length} of ${side.name}'s ${acked.length} acknowledged messages never reached ${other.name}'s flow`);
      should(twice).eql([], `${twice.length} of ${side.name}'s messages reached ${other.name}'s flow twice`);
      const streamsAcked = lines(path.join(side.dir, "streams-acked.txt"));
      should(streamsAcked.length).be.above(0);
      should(lines(path.join(other.dir, "streams-received.txt")).filter((length) => length === "262144").length).be.aboveOrEqual(streamsAcked.length);
      // Every document written before the last 10 s is on the other side.
      const written = lines(path.join(side.dir, "written.txt")).map((line) => line.split(" ")).filter(([at]) => Number(at) < settledAt - 10_000).map(([, id]) => id);
      const theirs = new PouchDB(path.join(other.dir, "peer-mesh", other.identity.deviceId, "databases", "readings"));
      try {
        const found = await theirs.allDocs({ keys: written });
        const absent = found.rows.filter((row) => !("value" in row) || !row.value).map((row) => row.key);
        should(written.length).be.above(DEPLOYS / 2);
        should(absent).eql([], `${absent.length} of ${side.name}'s ${written.length} documents are not in ${other.name}'s database`);
      } finally {
        await theirs.close();
      }
      console.log(`      ${side.name}: ${acked.length} messages acknowledged and delivered once, ${streamsAcked.length} streams, ${written.length} documents replicated; ${handedOver[1 - i]} handed over again after a deploy dropped them at ${other.name}`);
    }
  });
});
