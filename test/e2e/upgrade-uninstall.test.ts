import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import PouchDB from "pouchdb-node";
import should from "should";
import { Identity } from "../../lib";
import { RunningDemo, startDemo } from "../../scripts/demo";
import { debugFeed } from "../helpers/debug-feed";
import { packFromCleanCopy } from "../helpers/pack";
import { freePort } from "../helpers/ports";

const projectRoot = path.resolve(__dirname, "..", "..", "..");
const redJs = process.env.NODE_RED_RUNTIME ? path.join(path.dirname(process.env.NODE_RED_RUNTIME), "..", "red.js") : undefined;
const PACKAGE = "@peer-mesh/node-red-peer-mesh";
/** The last commit of release 0.1.0 (before 0.2.0's changes). */
const RELEASE_0_1_0 = "f92f461";

/**
 * What a user of 0.1.0 lives through: the package installed from the palette, flows deployed with keys,
 * a group and a database; then the new version installed over it with npm in the same user directory
 * and Node-RED restarted; later the package removed from the palette. The keys, groups, databases and
 * mesh store must survive the upgrade, and the data must stay where the README says after uninstalling.
 */
describe("upgrading from 0.1.0, and uninstalling from the palette", function () {
  this.timeout(600_000);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "peer-mesh-upgrade-"));
  const userDir = path.join(work, "user");
  let red: RunningDemo | undefined;
  let oldTarball: string | undefined;
  let newTarball: string;
  const deployedIds: string[] = [];

  before(function () {
    // 0.1.0 as it was, built from its own sources (its npm pack had no build step, so it is built first).
    const old = path.join(work, "v0.1.0");
    const hasCommit = spawnSync("git", ["cat-file", "-e", `${RELEASE_0_1_0}^{commit}`], { cwd: projectRoot }).status === 0;
    if (!hasCommit) {
      console.log(`      skipped: this clone has no history back to 0.1.0 (${RELEASE_0_1_0}); git fetch --unshallow brings it`);
      this.skip();
    }
    execFileSync("git", ["worktree", "add", "--detach", old, RELEASE_0_1_0], { cwd: projectRoot, stdio: "ignore" });
    try {
      fs.symlinkSync(path.join(projectRoot, "node_modules"), path.join(old, "node_modules"), "dir");
      execFileSync(process.execPath, ["scripts/build.js"], { cwd: old, stdio: "ignore" });
      const [packed] = JSON.parse(execFileSync("npm", ["pack", "--json", "--pack-destination", work], { cwd: old, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })) as Array<{ filename: string; version: string }>;
      should(packed.version).equal("0.1.0");
      oldTarball = path.join(work, packed.filename.replace(/^@/, "").replace("/", "-"));
    } finally {
      execFileSync("git", ["worktree", "remove", "--force", old], { cwd: projectRoot, stdio: "ignore" });
    }
    newTarball = packFromCleanCopy(work).tarball;
  });

  after(async () => {
    await red?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  async function call(method: string, route: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
    const res = await fetch(`${red!.url}${route}`, { method, headers: { ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, text: await res.text() };
  }

  async function identityOf(node: string): Promise<{ deviceId: string; port: number }> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const answer = await call("GET", `/peer-mesh/identity/${node}`);
      if (answer.status === 200) {
        const body = JSON.parse(answer.text) as { deviceId: string; port: number | null };
        if (body.port) return { deviceId: body.deviceId, port: body.port };
      }
      if (Date.now() > deadline) throw new Error(`identity ${node} did not start: ${answer.status} ${answer.text}\n${log}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /** Presses `inject` until `debug` shows a message on `feed` (the receiving identity may still be starting). */
  async function injectUntilSeen(feed: ReturnType<typeof debugFeed>, inject: string, debug: string, wanted: RegExp): Promise<string> {
    await feed.ready;
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      await call("POST", `/inject/${inject}`);
      const seen = await feed.from(debug, 2_000, (message) => wanted.test(message.msg)).catch(() => undefined);
      if (seen) return seen.msg;
    }
    throw new Error(`nothing matching ${wanted} reached ${debug}`);
  }

  async function injectUntilDebug(inject: string, debug: string, wanted: RegExp): Promise<string> {
    const feed = debugFeed(red!.url);
    try {
      return await injectUntilSeen(feed, inject, debug, wanted);
    } finally {
      feed.close();
    }
  }

  let log = "";
  const start = async (port: number): Promise<void> => {
    red = await startDemo({ userDir, port, stdio: "pipe", redJs, bare: true });
    for (const stream of [red.child.stdout, red.child.stderr]) stream?.on("data", (chunk: Buffer) => void (log = (log + chunk.toString()).slice(-20_000)));
  };

  it("keeps the device ids, groups, databases and mesh store when 0.2.0 is installed over 0.1.0, and messages still flow", async () => {
    const port = await freePort();
    await start(port);
    const form = new FormData();
    form.append("tarball", new Blob([fs.readFileSync(oldTarball!)], { type: "application/gzip" }), path.basename(oldTarball!));
    const installed = await fetch(`${red!.url}/nodes`, { method: "POST", body: form });
    should(installed.status).equal(200, await installed.text());

    const sensor = Identity.generate();
    const gateway = Identity.generate();
    deployedIds.push(sensor.deviceId, gateway.deviceId);
    const [sensorPort, gatewayPort] = [await freePort(), await freePort()];
    const flows = [
      // Node ids differ from the peers' names: Node-RED reads a config node's string values that equal a node id as references.
      { id: "tab", type: "tab", label: "upgrade" },
      { id: "sensor-id", type: "identity-config", name: "sensor", host: "127.0.0.1", port: sensorPort, peers: [{ id: gateway.deviceId, name: "gateway", address: `127.0.0.1:${gatewayPort}` }], databases: "readings", groups: [{ name: "line", members: [gateway.deviceId] }], credentials: { privateKey: sensor.privateKeyPem, certificate: sensor.certificatePem } },
      { id: "gateway-id", type: "identity-config", name: "gateway", host: "127.0.0.1", port: gatewayPort, peers: [{ id: sensor.deviceId, name: "sensor", address: `127.0.0.1:${sensorPort}` }], credentials: { privateKey: gateway.privateKeyPem, certificate: gateway.certificatePem } },
      { id: "reading", type: "inject", z: "tab", props: [{ p: "payload" }, { p: "topic", vt: "str" }], topic: "temp", payload: "21.5", payloadType: "num", repeat: "", once: false, wires: [["send"]] },
      { id: "send", type: "peer-send", z: "tab", identity: "sensor-id", peer: "gateway", topic: "", timeout: 10, partsAsStream: true, wires: [[]] },
      { id: "receive", type: "peer-receive", z: "tab", identity: "gateway-id", topic: "#", streamOutput: "chunks", chunkKb: 64, maxBufferMb: 64, wires: [["seen"]] },
      { id: "seen", type: "debug", z: "tab", active: true, tosidebar: true, complete: "true", wires: [] },
      { id: "store", type: "inject", z: "tab", props: [{ p: "payload" }, { p: "database", v: "readings", vt: "str" }], payload: '{"_id":"before-upgrade","celsius":21.5}', payloadType: "json", repeat: "", once: false, wires: [["sync"]] },
      { id: "sync", type: "mesh-sync", z: "tab", identity: "sensor-id", databases: "readings", direction: "both", mesh: true, relay: true, interval: 60, maxDocs: 100, maxKb: 4096, mode: "flood", ttl: 86400, priority: 4, fallback: 60, quotaDocs: 10000, quotaMb: 256, minBattery: 20, cloudDatabase: "peer-mesh", wires: [[], ["stored"]] },
      { id: "stored", type: "debug", z: "tab", active: true, tosidebar: true, complete: "true", wires: [] },
    ];
    should((await call("POST", "/flows", flows, { "Node-RED-Deployment-Type": "full" })).status).equal(204);
    const before = { sensor: await identityOf("sensor-id"), gateway: await identityOf("gateway-id") };
    should(before.sensor.deviceId).equal(sensor.deviceId);
    const events = debugFeed(red!.url);
    try {
      // The store is pressed once (a second press would write the same document again), so first the feed
      // must be seen to carry debug messages: a reading that arrives through it proves the subscription.
      await injectUntilSeen(events, "reading", "seen", /21\.5/);
      await call("POST", "/inject/store");
      should((await events.from("stored", 20_000, (message) => /before-upgrade/.test(message.msg))).msg).match(/"database":"readings"/);
    } finally {
      events.close();
    }
    const storageDir = path.join(userDir, "peer-mesh", sensor.deviceId);

    // The upgrade: Node-RED stopped, the new tarball installed with npm in the same user directory, restarted.
    await red!.stop();
    execFileSync("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", newTarball], { cwd: userDir, stdio: "ignore" });
    const installedVersion = (JSON.parse(fs.readFileSync(path.join(userDir, "node_modules", PACKAGE, "package.json"), "utf8")) as { version: string }).version;
    should(installedVersion).equal("0.2.0");
    await start(port);
    const after = { sensor: await identityOf("sensor-id"), gateway: await identityOf("gateway-id") };
    should(after.sensor.deviceId).equal(before.sensor.deviceId);
    should(after.gateway.deviceId).equal(before.gateway.deviceId);
    await injectUntilDebug("reading", "seen", /21\.5/);

    // The data of 0.1.0, read from disk once Node-RED is stopped: the document, the group and the device document.
    await red!.stop();
    red = undefined;
    const readings = new PouchDB(path.join(storageDir, "databases", "readings"));
    const system = new PouchDB(path.join(storageDir, "system"));
    try {
      should(await readings.get<{ celsius: number }>("before-upgrade")).containEql({ celsius: 21.5 });
      const group = await system.get<{ version: number; members: string[] }>(`group:${sensor.deviceId}:line`);
      should(group).containEql({ version: 1, members: [gateway.deviceId] });
      should(await system.get(`dev:${sensor.deviceId}`)).be.ok();
    } finally {
      await Promise.all([readings.close(), system.close()]);
    }
  });

  it("uninstalls from the palette once no flow uses it: the nodes are gone, the devices' data stays under <userDir>/peer-mesh", async () => {
    const port = await freePort();
    await start(port);
    // Node-RED refuses to remove a module whose nodes are in use, as the palette says: first the flows go.
    should((await call("POST", "/flows", [], { "Node-RED-Deployment-Type": "full" })).status).equal(204);
    const removed = await call("DELETE", `/nodes/${PACKAGE}`);
    should(removed.status).equal(204, removed.text);
    const sets = JSON.parse((await call("GET", "/nodes", undefined, { accept: "application/json" })).text) as Array<{ module: string }>;
    should(sets.filter((set) => set.module === PACKAGE)).eql([]);
    should(fs.existsSync(path.join(userDir, "node_modules", PACKAGE))).be.false();
    // The two identities of the first test keep their data. (On Node-RED 5 two more device directories
    // were found here once; not explained yet, so the assertion names the ones that must stay.)
    const kept = fs.readdirSync(path.join(userDir, "peer-mesh"));
    if (kept.length > deployedIds.length) {
      // What made the others: an identity that found no credentials generates a key (its warning says so).
      console.log(`      ${kept.length} device directories; the log says:\n${log.split("\n").filter((line) => /credential|generated|new key|warn/i.test(line)).join("\n")}`);
    }
    for (const device of deployedIds) should(kept).containEql(device);
    for (const device of deployedIds) should(fs.existsSync(path.join(userDir, "peer-mesh", device, "system"))).be.true();
  });
});
