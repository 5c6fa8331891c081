import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import should from "should";
import { RunningDemo, startDemo } from "../../scripts/demo";
import { debugFeed } from "../helpers/debug-feed";
import { freePort } from "../helpers/ports";

const redJs = process.env.NODE_RED_RUNTIME ? path.join(path.dirname(process.env.NODE_RED_RUNTIME), "..", "red.js") : undefined;
const pairedOnly = [{ effect: "allow", principal: "group:paired", verb: "*", resource: "*" }];

interface Pairing {
  requestId: string;
  sas: string;
  direction: "incoming" | "outgoing";
  peer: { id: string };
}

/**
 * Pairing as two users do it, between two separate Node-RED processes that know nothing of each other:
 * one shows its code, the other asks to pair with it, a wrong confirmation is refused, the right digits
 * typed on both sides let the guest in, and then the guest's flow reaches the hub's.
 */
describe("pairing between two Node-RED processes", function () {
  this.timeout(120_000);
  const dirs: string[] = [];
  const runtimes: RunningDemo[] = [];
  after(async () => {
    await Promise.all(runtimes.map((runtime) => runtime.stop()));
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  });

  async function runtime(flows: object[]): Promise<RunningDemo> {
    const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "peer-mesh-pairing-"));
    dirs.push(userDir);
    const started = await startDemo({ userDir, port: await freePort(), stdio: "pipe", redJs, deployDemo: false });
    runtimes.push(started);
    await deployFlows(started, flows, "full");
    return started;
  }

  async function deployFlows(target: RunningDemo, flows: object[], type: "full" | "nodes"): Promise<void> {
    const res = await fetch(`${target.url}/flows`, { method: "POST", headers: { "content-type": "application/json", "Node-RED-Deployment-Type": type }, body: JSON.stringify(flows) });
    should(res.status).equal(204, await res.text());
  }

  async function call<T>(target: RunningDemo, method: string, route: string, body?: object): Promise<{ status: number; body: T }> {
    const res = await fetch(`${target.url}${route}`, { method, headers: body ? { "content-type": "application/json" } : {}, body: body ? JSON.stringify(body) : undefined });
    return { status: res.status, body: (await res.json()) as T };
  }

  async function running(target: RunningDemo, node: string): Promise<{ deviceId: string; port: number }> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const { status, body } = await call<{ deviceId: string; port: number | null }>(target, "GET", `/peer-mesh/identity/${node}`);
      if (status === 200 && body.port) return { deviceId: body.deviceId, port: body.port };
      if (Date.now() > deadline) throw new Error(`identity ${node} did not start`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  it("pairs by code with the six digits confirmed on both sides, refuses wrong digits, and then the guest's messages reach the hub's flow", async () => {
    const hubPort = await freePort();
    const hubTab = { id: "hub-tab", type: "tab", label: "hub" };
    const hub = await runtime([
      hubTab,
      { id: "hub-id", type: "identity-config", name: "hub", host: "127.0.0.1", port: hubPort, rules: pairedOnly },
      { id: "hub-in", type: "peer-receive", z: "hub-tab", name: "from paired devices", identity: "hub-id", topic: "#", streamOutput: "chunks", chunkKb: 64, maxBufferMb: 64, wires: [["hub-debug"]] },
      { id: "hub-debug", type: "debug", z: "hub-tab", name: "at the hub", active: true, tosidebar: true, console: false, complete: "true", targetType: "full", wires: [] },
    ]);
    const guestTab = { id: "guest-tab", type: "tab", label: "guest" };
    const guestIdentity = { id: "guest-id", type: "identity-config", name: "guest", host: "127.0.0.1", port: 0, rules: pairedOnly };
    const guest = await runtime([guestTab, guestIdentity]);
    const hubDevice = await running(hub, "hub-id");
    const guestDevice = await running(guest, "guest-id");

    const code = (await call<{ code: string }>(hub, "GET", "/peer-mesh/identity/hub-id/pairing-code")).body.code;
    should(code).equal(`peer-mesh:${hubDevice.deviceId}@127.0.0.1:${hubPort}`);

    // First try: the hub's user types digits that are not the ones shown.
    const first = await call<Pairing>(guest, "POST", "/peer-mesh/identity/guest-id/pairings", { code });
    should(first.status).equal(200);
    const [waiting] = (await call<Pairing[]>(hub, "GET", "/peer-mesh/identity/hub-id/pairings")).body;
    should(waiting).containEql({ direction: "incoming" });
    should(waiting.peer).containEql({ id: guestDevice.deviceId, name: `guest (${guestDevice.deviceId.slice(0, 8)})` });
    should(waiting.sas).equal(first.body.sas); // both screens show the same six digits
    const wrongDigits = waiting.sas === "000000" ? "000001" : "000000";
    const refused = await call<{ code: string }>(hub, "POST", `/peer-mesh/identity/hub-id/pairings/${waiting.requestId}/confirm`, { group: "paired", sas: wrongDigits });
    should(refused.status).equal(400);
    should(refused.body.code).equal("PAIRING_MISMATCH");

    // Second try: both users type the digits the other screen shows.
    const second = await call<Pairing>(guest, "POST", "/peer-mesh/identity/guest-id/pairings", { code });
    const [incoming] = (await call<Pairing[]>(hub, "GET", "/peer-mesh/identity/hub-id/pairings")).body;
    should((await call(hub, "POST", `/peer-mesh/identity/hub-id/pairings/${incoming.requestId}/confirm`, { group: "paired", sas: second.body.sas })).status).equal(200);
    should((await call(guest, "POST", `/peer-mesh/identity/guest-id/pairings/${second.body.requestId}/confirm`, { group: "paired", sas: incoming.sas })).status).equal(200);

    // The guest's user adds a flow that sends to the hub (only the new nodes restart; the identity keeps running).
    await deployFlows(
      guest,
      [
        guestTab,
        guestIdentity,
        { id: "guest-hello", type: "inject", z: "guest-tab", name: "hello", props: [{ p: "payload" }, { p: "topic", vt: "str" }], topic: "greetings", payload: "hello from the guest", payloadType: "str", repeat: "", once: false, wires: [["guest-send"]] },
        { id: "guest-send", type: "peer-send", z: "guest-tab", name: "to the hub", identity: "guest-id", peer: hubDevice.deviceId, topic: "", timeout: 10, partsAsStream: true, wires: [[]] },
      ],
      "nodes",
    );
    const feed = debugFeed(hub.url);
    try {
      const deadline = Date.now() + 20_000;
      let arrived: { msg: string } | undefined;
      while (!arrived && Date.now() < deadline) {
        await fetch(`${guest.url}/inject/guest-hello`, { method: "POST" });
        arrived = await feed.from("hub-debug", 2_000).catch(() => undefined);
      }
      should(arrived?.msg).match(/hello from the guest/).and.match(new RegExp(guestDevice.deviceId));
    } finally {
      feed.close();
    }
  });
});
