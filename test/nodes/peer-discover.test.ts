import should from "should";
import { Device, Identity } from "../../lib";
import { allNodes, helper, loadFlow, useNodeRedHelper } from "../helpers/node-red";
import { waitFor } from "../helpers/events";
import { freePort } from "../helpers/ports";
import { collector, inTab, ready, statusWhere } from "./flow-helpers";

describe("peer-discover node", function () {
  useNodeRedHelper();

  let outside: Device | undefined;
  afterEach(async () => {
    await outside?.stop();
    outside = undefined;
  });

  /** A device outside Node-RED, known to the flow's identity by key and address. */
  async function startOutsidePeer(identity: Identity, port: number): Promise<Device> {
    outside = new Device({ identity, host: "127.0.0.1", port });
    await outside.start();
    return outside;
  }

  function flow(peerIdentity: Identity, port: number, discover: Record<string, unknown> = {}) {
    return inTab([
      { id: "id", type: "identity-config", name: "gateway", host: "127.0.0.1", port: 0, probeInterval: 0.1, peers: [{ id: peerIdentity.deviceId, name: "press", address: `127.0.0.1:${port}` }] },
      { id: "discover", type: "peer-discover", identity: "id", wires: [["out"]], ...discover },
      { id: "out", type: "helper" },
      { id: "catcher", type: "catch", scope: null, wires: [["caught"]] },
      { id: "caught", type: "helper" },
    ]);
  }

  it("outputs found and lost for a known peer that comes and goes, with its description, and counts it in the status", async () => {
    const press = Identity.generate();
    const port = await freePort();
    await loadFlow(allNodes, flow(press, port));
    const out = collector("out");
    await ready("id");
    const inRange = statusWhere("discover", (status) => status.fill === "green");
    const device = await startOutsidePeer(press, port);
    const [found] = await out.next();
    should(found.topic).equal("found");
    should(found.payload).containEql({ id: press.deviceId, name: "press", transports: ["static"], address: `127.0.0.1:${port}`, trusted: true, verified: true });
    should((found.payload as { lastSeen: number }).lastSeen).be.a.Number();
    should(await inRange).containEql({ shape: "dot", text: "peer-discover.status.in-range" }); // the test runtime shows catalog keys
    await device.stop();
    const [lost] = await out.next();
    should(lost).containEql({ topic: "lost" });
    should(lost.payload).containEql({ id: press.deviceId });
  });

  it("outputs key-changed, turns red and never finds the peer, when another key answers at a known peer's address", async () => {
    const press = Identity.generate();
    const port = await freePort();
    const impostor = await startOutsidePeer(Identity.generate(), port); // the press's address, another key
    await loadFlow(allNodes, flow(press, port));
    const out = collector("out");
    const red = statusWhere("discover", (status) => status.fill === "red");
    await ready("id");
    const [changed] = await out.next();
    should(changed.topic).equal("key-changed");
    should(changed.payload).match({ peerId: press.deviceId, name: "press", address: `127.0.0.1:${port}`, answeredBy: impostor.id });
    should((await red).text).match(/peer-discover.status.key-changed/);
    // What answered is reported as itself, an unknown key, never as the press.
    should(out.queue.filter((msg) => (msg.payload as { id?: string }).id === press.deviceId)).eql([]);
    should(out.queue.filter((msg) => msg.topic === "found").every((msg) => (msg.payload as { trusted: boolean }).trusted === false)).be.true();
  });

  it("shows Bluetooth LE as unavailable in yellow where noble cannot reach an adapter, and finds peers the other ways", async function () {
    try {
      require("@abandonware/noble");
      console.log("      skipped: noble loads here (a Bluetooth adapter is present)");
      return this.skip();
    } catch {
      // no adapter: the case under test
    }
    const press = Identity.generate();
    const port = await freePort();
    const nodes = flow(press, port).map((node) => (node.type === "identity-config" ? { ...node, ble: true } : node));
    await loadFlow(allNodes, nodes);
    const unavailable = statusWhere("discover", (status) => status.text === "peer-discover.status.unavailable");
    const out = collector("out");
    await ready("id");
    should(await unavailable).containEql({ fill: "yellow" });
    await startOutsidePeer(press, port);
    const [found] = await out.next();
    should(found.payload).containEql({ id: press.deviceId, transports: ["static"] });
  });

  it("answers an input msg with the list of peers in range, keeping the msg's other properties", async () => {
    const press = Identity.generate();
    const port = await freePort();
    await loadFlow(allNodes, flow(press, port));
    const out = collector("out");
    await ready("id");
    await startOutsidePeer(press, port);
    await out.next(); // found
    helper.getNode("discover").receive({ payload: "list", _msgid: "m1", correlation: 7 } as never);
    const [answer] = await out.next();
    should(answer).containEql({ topic: "peers", correlation: 7 });
    should((answer.payload as Array<{ id: string }>).map((peer) => peer.id)).eql([press.deviceId]);
  });

  it("reports nothing from transports it was told not to show", async () => {
    const press = Identity.generate();
    const port = await freePort();
    await loadFlow(allNodes, flow(press, port, { transports: ["mdns"] }));
    const out = collector("out");
    await ready("id");
    await startOutsidePeer(press, port);
    // The identity sees the peer (the table says so) but this node shows only mDNS peers.
    const identity = helper.getNode("id") as unknown as { device: Device };
    if (!identity.device.peerTable.get(press.deviceId)) await waitFor(identity.device.peerTable, "found", () => true, 5_000);
    helper.getNode("discover").receive({ payload: "list" } as never);
    const [answer] = await out.next();
    should(answer).containEql({ topic: "peers", payload: [] });
  });

  it("without an identity, passes an input msg's error to a catch node", async () => {
    await loadFlow(allNodes, inTab([
      { id: "discover", type: "peer-discover", identity: "", wires: [[]] },
      { id: "catcher", type: "catch", scope: null, wires: [["caught"]] },
      { id: "caught", type: "helper" },
    ]));
    const caught = collector("caught");
    helper.getNode("discover").receive({ payload: "list" } as never);
    const [msg] = await caught.next();
    should((msg.error as { message: string }).message).match(/peer-mesh\.errors\.no-identity$/);
  });
});

describe("peer-discover node: pairing accepted by a flow", function () {
  useNodeRedHelper();
  let outside: Device | undefined;
  afterEach(async () => {
    await outside?.stop();
  });

  it("outputs an incoming pairing request and accepts it without the digits inside a window a button opened, the peer joining the group", async () => {
    await loadFlow(allNodes, inTab([
      { id: "idHub", type: "identity-config", host: "127.0.0.1", port: 0, rules: [{ effect: "allow", principal: "group:family", verb: "*", resource: "*" }] },
      { id: "discover", type: "peer-discover", identity: "idHub", wires: [["out"]] },
      { id: "out", type: "helper" },
    ]));
    const out = collector("out");
    await ready("idHub");
    const hub = (helper.getNode("idHub") as unknown as { device: Device }).device;
    const guest = new Device({ identity: Identity.generate(), name: "guest", acl: { rules: [{ effect: "allow", principal: "any", verb: "*", resource: "*" }] } });
    outside = guest;
    await guest.start();
    // Without a window, a request cannot be accepted without its digits: the error reaches a Catch node.
    await guest.pairing.request(hub.pairing.code());
    const [early] = await out.next();
    const failed = new Promise<Error>((resolve) => helper.getNode("discover").once("call:error", (call: { args: [Error] }) => resolve(call.args[0])));
    helper.getNode("discover").receive({ topic: "pairing/accept", payload: { requestId: (early.payload as { requestId: string }).requestId, group: "family" } } as never);
    should((await failed).message).match(/pairing window/);
    should(hub.acl.inGroup("group:family", guest.id)).be.false();
    // The button press: the next request may be accepted as it is.
    helper.getNode("discover").receive({ topic: "pairing/open", payload: { seconds: 30 } } as never);
    const [opened] = await out.next();
    should(opened).containEql({ topic: "pairing/open" });
    const asked = await guest.pairing.request(hub.pairing.code());
    const [request] = await out.next();
    should(request).containEql({ topic: "pairing" });
    should(request.payload).containEql({ direction: "incoming", sas: asked.sas, windowed: true, peer: { id: guest.id, name: `guest (${guest.identity.shortId})` } });
    helper.getNode("discover").receive({ topic: "pairing/accept", payload: { requestId: (request.payload as { requestId: string }).requestId, group: "family" } } as never);
    const [paired] = await out.next();
    should(paired).containEql({ topic: "paired" });
    should(hub.acl.inGroup("group:family", guest.id)).be.true();
  });
});
