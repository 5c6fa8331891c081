import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import should from "should";
import { RunningDemo, startDemo } from "../../scripts/demo";
import { debugFeed } from "../helpers/debug-feed";
import { freePort } from "../helpers/ports";
import { torNetworkOrSkip, type TorTestNetwork } from "../helpers/tor-network";

const redJs = process.env.NODE_RED_RUNTIME ? path.join(path.dirname(process.env.NODE_RED_RUNTIME), "..", "red.js") : undefined;
const pairedOnly = [{ effect: "allow", principal: "group:paired", verb: "*", resource: "*" }];

interface Pairing {
  requestId: string;
  sas: string;
  address?: string;
}

interface Overview {
  nodeId: string;
  tor?: { state: string; progress: number; onion?: string; published: boolean };
}

/**
 * What a user does with Tor between two Node-RED processes: sets Tor to "only" in each identity, waits
 * for the onion service, pairs with the code (which carries the onion address alone), and sends. The
 * tors run on a private Tor network on 127.0.0.1, reached through the identity's "tor binary" field.
 */
describe("Tor between two Node-RED processes", function () {
  this.timeout(240_000);
  let network: TorTestNetwork | undefined;
  let torBinary = "";
  const dirs: string[] = [];
  const runtimes: RunningDemo[] = [];

  before(async function () {
    network = await torNetworkOrSkip(this);
    torBinary = await network.clientBinary();
  });

  after(async () => {
    await Promise.all(runtimes.map((runtime) => runtime.stop()));
    await network?.stop();
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  });

  async function runtime(flows: object[]): Promise<RunningDemo> {
    const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "peer-mesh-tor-e2e-"));
    dirs.push(userDir);
    const started = await startDemo({ userDir, port: await freePort(), stdio: "pipe", redJs, deployDemo: false });
    runtimes.push(started);
    const res = await fetch(`${started.url}/flows`, { method: "POST", headers: { "content-type": "application/json", "Node-RED-Deployment-Type": "full" }, body: JSON.stringify(flows) });
    should(res.status).equal(204, await res.text());
    return started;
  }

  async function call<T>(target: RunningDemo, method: string, route: string, body?: object): Promise<{ status: number; body: T }> {
    const res = await fetch(`${target.url}${route}`, { method, headers: body ? { "content-type": "application/json" } : {}, body: body ? JSON.stringify(body) : undefined });
    return { status: res.status, body: (await res.json()) as T };
  }

  async function deviceId(target: RunningDemo, node: string): Promise<string> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const { status, body } = await call<{ deviceId: string; port: number | null }>(target, "GET", `/peer-mesh/identity/${node}`);
      if (status === 200 && body.port) return body.deviceId;
      if (Date.now() > deadline) throw new Error(`identity ${node} did not start`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  /** Waits for the sidebar's overview to show the identity's onion service published. */
  async function published(target: RunningDemo, node: string): Promise<string> {
    const deadline = Date.now() + 120_000;
    let last: Overview | undefined;
    while (Date.now() < deadline) {
      last = (await call<Overview[]>(target, "GET", "/peer-mesh/overview")).body.find((entry) => entry.nodeId === node);
      if (last?.tor?.published && last.tor.onion) return last.tor.onion;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    throw new Error(`the onion service of ${node} was not published: ${JSON.stringify(last)}`);
  }

  it("pairs by an onion-only code and delivers a peer-send message through Tor", async () => {
    const identity = (id: string, name: string) => ({ id, type: "identity-config", name, host: "127.0.0.1", port: 0, rules: pairedOnly, tor: "only", torMode: "launch", torPath: torBinary });
    const hub = await runtime([
      { id: "hub-tab", type: "tab", label: "hub" },
      identity("hub-id", "hub"),
      { id: "hub-in", type: "peer-receive", z: "hub-tab", identity: "hub-id", topic: "#", streamOutput: "chunks", chunkKb: 64, maxBufferMb: 64, wires: [["hub-debug"]] },
      { id: "hub-debug", type: "debug", z: "hub-tab", active: true, tosidebar: true, console: false, complete: "true", targetType: "full", wires: [] },
    ]);
    const hubId = await deviceId(hub, "hub-id");
    const guestTab = { id: "guest-tab", type: "tab", label: "guest" };
    const guest = await runtime([
      guestTab,
      identity("guest-id", "guest"),
      { id: "guest-hello", type: "inject", z: "guest-tab", props: [{ p: "payload" }, { p: "topic", vt: "str" }], topic: "greetings", payload: "hello through Tor", payloadType: "str", repeat: "", once: false, wires: [["guest-send"]] },
      { id: "guest-send", type: "peer-send", z: "guest-tab", identity: "guest-id", peer: hubId, topic: "", timeout: 30, partsAsStream: true, wires: [[]] },
    ]);
    const hubOnion = await published(hub, "hub-id");
    await published(guest, "guest-id");

    const code = (await call<{ code: string }>(hub, "GET", "/peer-mesh/identity/hub-id/pairing-code")).body.code;
    should(code).endWith(`@${hubOnion}`); // Tor only: no direct address in the code
    const request = await call<Pairing>(guest, "POST", "/peer-mesh/identity/guest-id/pairings", { code });
    should(request.status).equal(200, JSON.stringify(request.body));
    should(request.body.address).equal(hubOnion);
    const [incoming] = (await call<Pairing[]>(hub, "GET", "/peer-mesh/identity/hub-id/pairings")).body;
    should(incoming.sas).equal(request.body.sas);
    should((await call(hub, "POST", `/peer-mesh/identity/hub-id/pairings/${incoming.requestId}/confirm`, { group: "paired", sas: request.body.sas })).status).equal(200);
    should((await call(guest, "POST", `/peer-mesh/identity/guest-id/pairings/${request.body.requestId}/confirm`, { group: "paired", sas: incoming.sas })).status).equal(200);

    const feed = debugFeed(hub.url);
    try {
      const deadline = Date.now() + 60_000;
      let arrived: { msg: string } | undefined;
      while (!arrived && Date.now() < deadline) {
        await fetch(`${guest.url}/inject/guest-hello`, { method: "POST" });
        arrived = await feed.from("hub-debug", 10_000).catch(() => undefined);
      }
      should(arrived?.msg).match(/hello through Tor/);
    } finally {
      feed.close();
    }
  });
});
