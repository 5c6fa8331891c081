import should from "should";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import WebSocket from "ws";
import { debugFeed } from "../helpers/debug-feed";
import { exampleFlows, RunningDemo, startDemo } from "../../scripts/demo";
import { freePort } from "../nodes/fixtures";

describe("npm start: the demo in a real Node-RED", function () {
  this.timeout(120_000);
  let demo: RunningDemo | undefined;
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "peer-mesh-demo-"));
  after(async () => {
    await demo?.stop();
    fs.rmSync(userDir, { recursive: true, force: true });
  });

  it("loads the nodes, deploys the demo, and messages and a stream flow between the two identities", async () => {
    demo = await startDemo({
      userDir,
      port: await freePort(),
      gatewayPort: await freePort(),
      stdio: "pipe",
      redJs: process.env.NODE_RED_RUNTIME ? path.join(path.dirname(process.env.NODE_RED_RUNTIME), "..", "red.js") : undefined,
    });
    const nodes = (await (await fetch(`${demo.url}/nodes`, { headers: { accept: "application/json" } })).json()) as Array<{ module: string; types: string[] }>;
    const ours = nodes.filter((set) => set.module === "@peer-mesh/node-red-peer-mesh").flatMap((set) => set.types);
    should(ours.sort()).eql(["acl-check", "identity-config", "mesh-sync", "peer-discover", "peer-receive", "peer-reply", "peer-send"]);

    const feed = debugFeed(demo.url);
    try {
      const reading = await feed.from("demo-received");
      should(reading.msg).match(/"celsius"/).and.match(/"name":"sensor box"/);
      const ack = await feed.from("demo-acks");
      should(ack.msg).match(/"receivers":1/);
      await fetch(`${demo.url}/inject/demo-frame`, { method: "POST" });
      const frame = await feed.from("demo-frames");
      should(frame.msg).equal("1048576 bytes from sensor box");
      // The gateway is found at the sensor box's first successful probe (every 5 s); meanwhile ask for the list.
      const asking = setInterval(() => void fetch(`${demo!.url}/inject/demo-list-peers`, { method: "POST" }), 1_000);
      const inRange = await feed.from("demo-peers", 20_000, (message) => message.msg.includes('"name":"gateway"')).finally(() => clearInterval(asking));
      should(inRange.msg).match(/"topic":"(found|peers)"/).and.match(/"name":"gateway"/).and.match(/"transports":\["static"\]/);
    } finally {
      feed.close();
    }
  });

  it("runs both example flows: every node starts without an error, and each does what its read-me says", async () => {
    const log: string[] = [];
    demo!.child.stdout?.on("data", (chunk: Buffer) => log.push(...String(chunk).split("\n")));
    const examples = exampleFlows();
    const deployed = new Set(((await (await fetch(`${demo!.url}/flows`)).json()) as Array<{ id: string }>).map((node) => node.id));
    should(examples.map((node) => String(node.id)).filter((id) => !deployed.has(id))).eql([]);
    const inject = (id: string) => fetch(`${demo!.url}/inject/${id}`, { method: "POST" }).then((res) => should(res.status).equal(200));
    const feed = debugFeed(demo!.url);
    try {
      // Factory floor: readings reach the gateway; a command from outside group line-3 is refused.
      should((await feed.from("pm-factory-seen")).msg).match(/"celsius"/);
      await inject("pm-factory-stop");
      const refused = await feed.from("pm-factory-refused");
      should(refused.msg).match(/line-3/);
      const sync = await feed.from("pm-factory-sync-events", 30_000, (message) => message.msg.includes('"topic":"sync"') && message.msg.includes('"database":"readings"'));
      should(sync.msg).match(/"direction":"push"/);
      // The tablet asks the gateway for the last hour's readings and gets them back (peer send → peer reply).
      await inject("pm-factory-ask");
      const history = await feed.from("pm-factory-history-seen");
      should(history.msg).match(/"minutes":60/).and.match(/"celsius"/);
      // Home automation: the door sensor switches the lights; the phone, not in group family, cannot unlock.
      await inject("pm-home-door-open");
      should((await feed.from("pm-home-lights-on")).msg).match(/"lights":"on"/).and.match(/"because":"door"/);
      await inject("pm-home-unlock");
      should((await feed.from("pm-home-refused")).msg).match(/family/);
      const logged = await feed.from("pm-home-sync-events", 30_000, (message) => message.msg.includes('"database":"door-log"') && message.msg.includes('"docsWritten":1'));
      should(logged.msg).match(/"topic":"sync"/);
      await inject("pm-home-in-range");
      const inRange = await feed.from("pm-home-peers", 20_000, (message) => message.msg.includes('"topic":"peers"'));
      should(inRange.msg).match(/"name":"front door"/);
    } finally {
      feed.close();
    }
    should(log.filter((line) => /\[error\]/.test(line))).eql([]);
  });

  it("loads the peer mesh sidebar plugin, whose overview lists each identity's peers and mesh neighbours, live over comms", async () => {
    const plugins = (await (await fetch(`${demo!.url}/plugins`, { headers: { accept: "application/json" } })).json()) as Array<{ id: string; plugins: Array<{ id: string }> }>;
    should(plugins.flatMap((set) => set.plugins.map((plugin) => plugin.id))).containEql("peer-mesh-sidebar");
    const editorSide = await (await fetch(`${demo!.url}/plugins`, { headers: { accept: "text/html" } })).text();
    should(editorSide).containEql("RED.plugins.registerPlugin('peer-mesh-sidebar'").and.containEql("RED.sidebar.addTab");

    interface Overview {
      nodeId: string;
      name?: string;
      deviceId: string;
      peers: Array<{ name?: string; transports: string[]; trusted: boolean; lastSync?: number }>;
      neighbours: Array<{ name?: string; lastSync?: number }>;
    }
    const byName = (all: Overview[], name: string): Overview => all.find((identity) => identity.name === name)!;
    const all = (await (await fetch(`${demo!.url}/peer-mesh/overview`)).json()) as Overview[];
    should(all.map((identity) => identity.name)).containEql("sensor box").and.containEql("line gateway").and.containEql("front door");
    should(byName(all, "sensor box").peers.find((peer) => peer.name === "gateway")).containEql({ transports: ["static"], trusted: true });
    // The factory gateway has synced readings with the tablet by now (the examples test waited for it).
    const gateway = all.find((identity) => identity.nodeId === "pm-factory-gateway")!;
    should(gateway.neighbours.find((n) => n.name === "maintenance tablet")?.lastSync).be.a.Number();

    // The editor's comms carry the same picture, retained, so a tab opened late has it at once.
    const socket = new WebSocket(`${demo!.url.replace("http", "ws")}/comms`);
    try {
      const published = await new Promise<Overview[]>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no peer-mesh/overview on comms")), 10_000);
        socket.on("open", () => socket.send(JSON.stringify({ subscribe: "peer-mesh/overview" })));
        socket.on("message", (data) => {
          for (const event of [JSON.parse(String(data))].flat() as Array<{ topic: string; data: Overview[] }>) {
            if (event.topic !== "peer-mesh/overview") continue;
            clearTimeout(timer);
            resolve(event.data);
          }
        });
      });
      should(published.map((identity) => identity.deviceId).sort()).eql(all.map((identity) => identity.deviceId).sort());
    } finally {
      socket.close();
    }
  });

  it("serves Prometheus metrics a scraper can read and a diagnostics download with no secret in it", async () => {
    const response = await fetch(`${demo!.url}/peer-mesh/metrics`);
    should(response.headers.get("content-type")).match(/^text\/plain;/).and.match(/version=0\.0\.4/);
    const text = await response.text();
    // The text format: HELP and TYPE once per family, then name{labels} value.
    const samples = text.split("\n").filter((line) => line && !line.startsWith("#"));
    for (const line of samples) should(line).match(/^peer_mesh_[a-z_]+\{([a-z_]+="(?:[^"\\]|\\.)*",?)+\} -?\d+(\.\d+)?$/);
    for (const family of new Set(samples.map((line) => line.slice(0, line.indexOf("{"))))) {
      should(text.split(`# TYPE ${family} `).length).equal(2, `one TYPE line for ${family}`);
    }
    const value = (name: string, labels: Record<string, string>): number | undefined => {
      const line = samples.find((sample) => sample.startsWith(`${name}{`) && Object.entries(labels).every(([key, wanted]) => sample.includes(`${key}="${wanted}"`)));
      return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
    };
    // The demo's sensor box has sent the gateway a reading every 5 s; the gateway counts them in.
    should(value("peer_mesh_messages_total", { identity: "sensor box", direction: "out", kind: "message" })).be.above(0);
    should(value("peer_mesh_messages_total", { identity: "line gateway", peer_name: "sensor box", direction: "in", kind: "message" })).be.above(0);
    should(value("peer_mesh_peers_in_range", { identity: "maintenance tablet" })).be.above(0);
    should(value("peer_mesh_replication_sessions_total", { identity: "line gateway", database: "readings" })).be.above(0);
    should(value("peer_mesh_storage_ok", { identity: "front door" })).equal(1);

    const download = await fetch(`${demo!.url}/peer-mesh/diagnostics`);
    should(download.headers.get("content-disposition")).match(/attachment; filename="peer-mesh-diagnostics-.+\.json"/);
    const body = await download.text();
    should(body).not.match(/PRIVATE KEY/).and.not.match(/password/i);
    const report = JSON.parse(body) as { versions: { nodeRed: string; node: string }; identities: Array<{ name: string; deviceId: string; traffic: { byPeer: object }; recentEvents: unknown[] }> };
    should(report.versions.node).match(/^v\d+\./);
    should(report.versions.nodeRed).match(/^\d+\.\d+/);
    should(report.identities.map((identity) => identity.name)).containEql("sensor box").and.containEql("family phone");
    should(Object.keys(report.identities.find((identity) => identity.name === "line gateway")!.traffic.byPeer).length).be.above(0);
  });

  it("keeps both device ids across a restart (keys stored in encrypted credentials)", async () => {
    const idOf = async (node: string) => ((await (await fetch(`${demo!.url}/peer-mesh/identity/${node}`)).json()) as { deviceId: string }).deviceId;
    const before = [await idOf("demo-sensor"), await idOf("demo-gateway")];
    should(before[0]).match(/^[a-z2-7]{52}$/);
    const credentials = fs.readFileSync(path.join(userDir, "flows_cred.json"), "utf8");
    should(credentials).not.match(/PRIVATE KEY/);
    const port = Number(new URL(demo!.url).port);
    await demo!.stop();
    demo = await startDemo({ userDir, port, stdio: "pipe" });
    should([await idOf("demo-sensor"), await idOf("demo-gateway")]).eql(before);
  });
});
