import should from "should";
import { Device, Identity, parsePairingCode, PendingPairing } from "../../lib";
import { PAIRING_PATH } from "../../lib/protocol/wire";
import { waitFor } from "../helpers/events";
import { rawRequest, rawSession } from "../helpers/raw-client";
import { TempDirs } from "../helpers/storage";

describe("Pairing by code, confirmed with six digits on both sides", () => {
  const devices: Device[] = [];
  const dirs = new TempDirs();
  afterEach(async () => {
    await Promise.all(devices.splice(0).map((device) => device.stop()));
    dirs.removeAll();
  });

  /** A device that knows nobody; only the "paired" group may send it messages and receive from it. */
  async function stranger(name: string): Promise<Device> {
    const device = new Device({
      identity: Identity.generate(),
      name,
      host: "127.0.0.1",
      discovery: { staticProbeIntervalMs: 0 },
      acl: { rules: [{ effect: "allow", principal: "group:paired", verb: "*", resource: "*" }] },
    });
    devices.push(device);
    await device.start();
    device.onMessage("#", () => undefined);
    return device;
  }

  it("pairs two devices that knew nothing of each other, after which they may talk", async () => {
    const hub = await stranger("hub");
    const guest = await stranger("guest phone");
    const incoming = waitFor<[PendingPairing]>(hub, "pairing", (p) => p.direction === "incoming", 5_000);
    const code = hub.pairing.code();
    should(parsePairingCode(code)).eql({ id: hub.id, addresses: [`127.0.0.1:${hub.port}`] });

    const outgoing = await guest.pairing.request(code);
    const [request] = await incoming;
    // The name is the guest's own claim: shown with its id prefix, so "Alice's phone" cannot pass for Alice's.
    should(request.peer).eql({ id: guest.id, name: `guest phone (${guest.identity.shortId})` });
    should(request.sas).match(/^\d{6}$/);
    should(outgoing.sas).equal(request.sas); // the users see the same digits on both screens

    // Before confirmation neither side lets the other in.
    await should(guest.send(hub.id, "hello", 1)).be.rejected();
    should(hub.acl.authorize(guest.id, "send", "msg/hello")).be.false();

    await hub.pairing.confirm(request.requestId, { group: "paired", sas: outgoing.sas });
    await guest.pairing.confirm(outgoing.requestId, { group: "paired", sas: request.sas });
    should(hub.acl.inGroup("group:paired", guest.id)).be.true();
    should((await guest.send(hub.id, "hello", 1)).receivers).equal(1);
    should(hub.pairing.list()).be.empty();
  });

  it("refuses a confirmation with digits that do not match, and the peer stays out", async () => {
    const hub = await stranger("hub");
    const guest = await stranger("guest");
    const incoming = waitFor<[PendingPairing]>(hub, "pairing", () => true, 5_000);
    const outgoing = await guest.pairing.request(hub.pairing.code());
    const [request] = await incoming;
    const wrong = String((Number(outgoing.sas) + 1) % 1_000_000).padStart(6, "0");
    await should(hub.pairing.confirm(request.requestId, { group: "paired", sas: wrong })).be.rejectedWith({ code: "PAIRING_MISMATCH" });
    should(hub.acl.inGroup("group:paired", guest.id)).be.false();
    // The request is gone: a second guess is not possible.
    await should(hub.pairing.confirm(request.requestId, { group: "paired", sas: outgoing.sas })).be.rejectedWith({ code: "NOT_FOUND" });
  });

  it("refuses a code whose device id is not the device at its address", async () => {
    const hub = await stranger("hub");
    const guest = await stranger("guest");
    const forged = `peer-mesh:${Identity.generate().deviceId}@127.0.0.1:${hub.port}`;
    await should(guest.pairing.request(forged)).be.rejectedWith({ code: "IDENTITY_MISMATCH" });
    should(hub.pairing.list()).be.empty();
    should(() => parsePairingCode("hello")).throw(/not a pairing code/);
  });

  it("reads codes with an onion address beside the direct one, and tries the direct one first", async () => {
    const id = Identity.generate().deviceId;
    const onion = `${"c".repeat(56)}.onion:443`;
    should(parsePairingCode(`peer-mesh:${id}@192.168.1.20:4000,${onion}`)).eql({ id, addresses: ["192.168.1.20:4000", onion] });
    should(() => parsePairingCode(`peer-mesh:${id}@${Array(5).fill("10.0.0.1:1").join(",")}`)).throw(/not a pairing code/);
    should(() => parsePairingCode(`peer-mesh:${id}@10.0.0.1:1,`)).throw(/not a pairing code/);
    // A device without Tor pairs over the direct address and never touches the onion one.
    const hub = await stranger("hub");
    const guest = await stranger("guest");
    const code = `${hub.pairing.code()},${onion}`;
    const pending = await guest.pairing.request(code);
    should(pending.address).equal(`127.0.0.1:${hub.port}`);
    // Only an onion address, and no Tor here: a clear refusal rather than a DNS lookup of the name.
    await should(guest.pairing.request(`peer-mesh:${hub.id}@${onion}`)).be.rejectedWith(/reachable only through Tor .*turn Tor on/);
  });

  it("a pairing lasts: after a restart the guest still reaches the hub at the address its code gave, and lists it as paired", async () => {
    const hub = await stranger("hub");
    const guestOptions = { identity: Identity.generate(), name: "guest", host: "127.0.0.1", storageDir: dirs.make(), discovery: { staticProbeIntervalMs: 0 }, acl: { rules: [{ effect: "allow" as const, principal: "group:paired", verb: "*" as const, resource: "*" }] } };
    const guest = new Device(guestOptions);
    devices.push(guest);
    await guest.start();
    const outgoing = await guest.pairing.request(hub.pairing.code());
    const incoming = hub.pairing.list()[0];
    await hub.pairing.confirm(incoming.requestId, { group: "paired", sas: outgoing.sas });
    await guest.pairing.confirm(outgoing.requestId, { group: "paired", sas: incoming.sas });
    await guest.stop();

    const again = new Device(guestOptions);
    devices.push(again);
    await again.start();
    should(again.pairing.paired()).match([{ id: hub.id, addresses: [`127.0.0.1:${hub.port}`], group: "paired" }]);
    should((await again.send(hub.id, "hello", "after a restart")).receivers).equal(1);
    // The hub keeps its side too: the guest is listed as paired (it asked, so there is no address to keep).
    should(hub.pairing.paired()).eql([]); // the hub here has no storage: nothing to keep it in
  });

  /** A pairing request from a fresh key, sent from `localAddress` (another loopback address stands for another machine). */
  async function rawPairing(hub: Device, localAddress: string, name: string, identity = Identity.generate()): Promise<{ status: number; body: string }> {
    const session = await rawSession(hub.port!, { key: identity.privateKeyPem, cert: identity.certificatePem }, localAddress);
    try {
      return await rawRequest(session, { ":method": "POST", ":path": PAIRING_PATH, "content-type": "application/json" }, JSON.stringify({ name }));
    } finally {
      session.close();
    }
  }

  it("bounds the requests waiting for confirmation: two per source address, sixteen in all, one per device", async () => {
    const hub = await stranger("hub");
    const code = hub.pairing.code();
    // One address (one stranger minting keys) holds two slots, not all sixteen.
    await (await stranger("g1")).pairing.request(code);
    const again = await stranger("g2");
    await again.pairing.request(code);
    await should((await stranger("g3")).pairing.request(code)).be.rejectedWith({ code: "REFUSED", message: /from this address are already waiting/ });
    // A device asking again replaces its own request.
    await again.pairing.request(code);
    should(hub.pairing.list().filter((p) => p.peer.id === again.id)).have.length(1);
    // Other addresses fill the rest, up to sixteen in all.
    for (let host = 2; host <= 8; host++) {
      for (let i = 0; i < 2; i++) should((await rawPairing(hub, `127.0.0.${host}`, `h${host}-${i}`)).status).equal(200);
    }
    should(hub.pairing.list()).have.length(16);
    const refused = await rawPairing(hub, "127.0.0.9", "one too many");
    should(refused.status).equal(403);
    should(refused.body).match(/too many pairing requests/);
  });

  it("shows a peer-supplied name with the id prefix and without control characters", async () => {
    const hub = await stranger("hub");
    const spoofer = Identity.generate();
    should((await rawPairing(hub, "127.0.0.1", "Alice's phone\u202e\u0007", spoofer)).status).equal(200);
    should(hub.pairing.list()[0].peer.name).equal(`Alice's phone (${spoofer.shortId})`);
  });

  it("headless: accepts without the digits only a request that arrived inside a pairing window, one per window", async () => {
    const hub = await stranger("hub");
    const code = hub.pairing.code();
    const early = await stranger("early");
    await early.pairing.request(code);
    const earlyHere = hub.pairing.list().find((p) => p.peer.id === early.id)!;
    // Before any physical action, the digits are needed.
    await should(hub.pairing.confirm(earlyHere.requestId, { group: "paired" })).be.rejectedWith({ code: "REFUSED", message: /pairing window/ });
    hub.pairing.reject(earlyHere.requestId); // it stays digits-only; out of the way of the per-address limit
    hub.pairing.openWindow(30_000);
    const first = await stranger("first");
    await first.pairing.request(code);
    const second = await stranger("second");
    await second.pairing.request(code);
    const [firstHere, secondHere] = [first, second].map((device) => hub.pairing.list().find((p) => p.peer.id === device.id)!);
    should(firstHere.windowed).be.true();
    should(secondHere.windowed).be.undefined();
    await hub.pairing.confirm(firstHere.requestId, { group: "paired" });
    should(hub.acl.inGroup("group:paired", first.id)).be.true();
    await should(hub.pairing.confirm(secondHere.requestId, { group: "paired" })).be.rejectedWith({ code: "REFUSED" });
    should(hub.acl.inGroup("group:paired", second.id)).be.false();
    should(() => hub.pairing.openWindow(0)).throw(/pairing window/);
  });
});
