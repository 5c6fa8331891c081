import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import PouchDB from "pouchdb-node";
import { Readable } from "node:stream";
import should from "should";
import { Device, GroupDoc, Identity, openDatabase, Rule, signGroup } from "../../lib";
import { waitFor } from "../helpers/events";

/** A stream that keeps going until something ends it; `tenChunksOut` resolves once it is well under way. */
function endlessStream(): { endless: Readable; tenChunksOut: Promise<void> } {
  let chunks = 0;
  let flowing!: () => void;
  const tenChunksOut = new Promise<void>((resolve) => (flowing = resolve));
  const endless = new Readable({
    read() {
      setTimeout(() => {
        this.push(Buffer.alloc(1024, chunks++));
        if (chunks === 10) flowing();
      }, 5);
    },
  });
  return { endless, tenChunksOut };
}

/** Receives every stream on `device` and resolves with the error that breaks one off. */
function streamFailure(device: Device): Promise<Error> {
  return new Promise<Error>((resolve) =>
    device.onStream("#", async (stream) => {
      try {
        for await (const _ of stream.body) void _;
      } catch (err) {
        resolve(err as Error);
        throw err;
      }
    }),
  );
}

/** Devices on 127.0.0.1 with real TLS; each knows the others' addresses; `rules` per receiving device. */
describe("ACL enforced on the wire", () => {
  const devices: Device[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(devices.splice(0).map((device) => device.stop()));
    for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });

  async function device(identity: Identity, options: { rules?: Rule[]; groups?: Array<{ name: string; members: string[] }>; peers?: Device[]; storage?: boolean } = {}): Promise<Device> {
    let storageDir: string | undefined;
    if (options.storage) dirs.push((storageDir = fs.mkdtempSync(path.join(os.tmpdir(), "peer-mesh-acl-"))));
    const created = new Device({
      identity,
      storageDir,
      acl: { rules: options.rules, groups: options.groups },
      peers: (options.peers ?? []).map((peer) => ({ id: peer.id, address: `127.0.0.1:${peer.port}` })),
      discovery: { staticProbeIntervalMs: 0 },
    });
    devices.push(created);
    await created.start();
    return created;
  }

  it("decides messages and streams at both ends without joining kind and topic into a resource, and an authorize function set to undefined gives the decisions back to the ACL", async () => {
    const a = Identity.generate();
    const b = await device(Identity.generate(), { rules: [{ effect: "allow", principal: `device:${a.deviceId}`, verb: "send", resource: "msg/door/#" }, { effect: "allow", principal: `device:${a.deviceId}`, verb: "send", resource: "stream/camera/#" }] });
    b.onMessage("#", () => undefined);
    b.onStream("#", async (stream) => void (await stream.body.toArray()));
    const sender = await device(a, { peers: [b], rules: [{ effect: "allow", principal: `device:${b.id}`, verb: "receive", resource: "*" }] });
    const joined: string[] = [];
    for (const end of [sender, b]) {
      const authorize = end.acl.authorize.bind(end.acl);
      end.acl.authorize = (peerId, verb, resource) => (joined.push(resource), authorize(peerId, verb, resource));
    }
    should((await sender.send(b.id, "door/front", "open")).receivers).equal(1);
    await should(sender.send(b.id, "window/front", "open")).be.rejectedWith({ code: "REFUSED", message: /not allowed to send to msg\/window\/front/ });
    should((await sender.sendStream(b.id, "camera/1", Readable.from([Buffer.alloc(1000)]))).bytes).equal(1000);
    should(joined).eql([]);
    b.authorize = () => true;
    should((await sender.send(b.id, "window/front", "open")).receivers).equal(1);
    b.authorize = undefined;
    await should(sender.send(b.id, "window/front", "open")).be.rejectedWith({ code: "REFUSED" });
  });

  it("allows and denies send on messages and on streams per topic pattern, through real TLS", async () => {
    const a = Identity.generate();
    const b = await device(Identity.generate(), {
      rules: [
        { effect: "allow", principal: `device:${a.deviceId}`, verb: "send", resource: "msg/door/#" },
        { effect: "allow", principal: `device:${a.deviceId}`, verb: "send", resource: "stream/camera/+" },
      ],
    });
    b.onMessage("#", () => undefined);
    b.onStream("#", async (stream) => void (await stream.body.toArray()));
    const sender = await device(a, { peers: [b] });
    should((await sender.send(b.id, "door/front", "open")).receivers).equal(1);
    await should(sender.send(b.id, "window/front", "open")).be.rejectedWith({ code: "REFUSED", message: /not allowed to send to msg\/window\/front/ });
    should((await sender.sendStream(b.id, "camera/1", Readable.from([Buffer.alloc(1000)]))).bytes).equal(1000);
    await should(sender.sendStream(b.id, "camera/1/raw", Readable.from([Buffer.alloc(1000)]))).be.rejectedWith({ code: "REFUSED" });
  });

  it("refuses to send to a peer its own ACL does not let receive the topic (verb receive)", async () => {
    const b = await device(Identity.generate());
    const c = await device(Identity.generate());
    const a = await device(Identity.generate(), {
      peers: [b, c],
      groups: [{ name: "family", members: [b.id] }],
      rules: [{ effect: "allow", principal: "group:family", verb: "receive", resource: "msg/#" }],
    });
    b.acl.setRules([{ effect: "allow", principal: "any", verb: "send", resource: "*" }]);
    c.acl.setRules([{ effect: "allow", principal: "any", verb: "send", resource: "*" }]);
    let cReceived = 0;
    b.onMessage("#", () => undefined);
    c.onMessage("#", () => void cReceived++);
    should((await a.send(b.id, "photos", 1)).receivers).equal(1);
    await should(a.send(c.id, "photos", 1)).be.rejectedWith({ code: "REFUSED", message: /does not let .* receive msg\/photos/ });
    should(cReceived).equal(0);
  });

  it("lets deny beat allow on the wire", async () => {
    const a = Identity.generate();
    const b = await device(Identity.generate(), {
      groups: [{ name: "family", members: [a.deviceId] }],
      rules: [
        { effect: "allow", principal: "group:family", verb: "*", resource: "*" },
        { effect: "deny", principal: `device:${a.deviceId}`, verb: "send", resource: "msg/door/unlock" },
      ],
    });
    b.onMessage("#", () => undefined);
    const sender = await device(a, { peers: [b] });
    should((await sender.send(b.id, "door/lock", 1)).receivers).equal(1);
    await should(sender.send(b.id, "door/unlock", 1)).be.rejectedWith({ code: "REFUSED" });
  });

  it("revokes on the next request without a restart, and ends the revoked key's open stream", async () => {
    const a = Identity.generate();
    const b = await device(Identity.generate(), {
      storage: true,
      groups: [{ name: "line-3", members: [a.deviceId] }],
      rules: [{ effect: "allow", principal: "group:line-3", verb: "send", resource: "*" }],
    });
    b.onMessage("#", () => undefined);
    const listenerFailed = streamFailure(b);
    const sender = await device(a, { peers: [b], rules: [{ effect: "allow", principal: "any", verb: "receive", resource: "*" }] });
    should((await sender.send(b.id, "t", 1)).receivers).equal(1);

    const { endless, tenChunksOut } = endlessStream();
    const streaming = sender.sendStream(b.id, "camera", endless);
    streaming.catch(() => undefined);
    await tenChunksOut;

    await b.setGroup("line-3", []);
    await should(streaming).be.rejectedWith({ code: "REFUSED" });
    should((await listenerFailed).message).match(/no longer allowed/);
    await should(sender.send(b.id, "t", 2)).be.rejectedWith({ code: "REFUSED" });
    endless.destroy();
  });

  it("verifies a group signed by its owner after it passed through a relay's database, and rejects a copy altered there", async () => {
    const owner = Identity.generate();
    const member = Identity.generate();
    const intruder = Identity.generate();
    const c = await device(Identity.generate(), {
      storage: true,
      rules: [{ effect: "allow", principal: `group:${owner.deviceId}/line-3`, verb: "send", resource: "*" }],
    });
    c.onMessage("#", () => undefined);
    const rejected: Array<{ id: string; reason: string }> = [];
    c.on("rejected", (info) => rejected.push(info));

    // The owner's database → the relay's → C's own: PouchDB replication, as the mesh will do it.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "peer-mesh-relay-"));
    dirs.push(dir);
    const ownerDb = openDatabase(dir, "owner");
    const relayDb = openDatabase(dir, "relay");
    const cDb = c.systemDatabase!;
    try {
      await ownerDb.put(signGroup(owner, "line-3", [member.deviceId], 1));
      await PouchDB.replicate(ownerDb, relayDb);
      const accepted = waitFor(c.acl, "changed", () => !!c.acl.group(owner.deviceId, "line-3"), 5_000, "the group at C");
      await PouchDB.replicate(relayDb, cDb);
      await accepted;
      const memberDevice = await device(member, { peers: [c], rules: [{ effect: "allow", principal: "any", verb: "receive", resource: "*" }] });
      should((await memberDevice.send(c.id, "t", 1)).receivers).equal(1);

      // The relay adds an intruder to its copy: a new revision whose signature no longer matches.
      const relayed = await relayDb.get<GroupDoc>(`group:${owner.deviceId}:line-3`);
      await relayDb.put({ ...relayed, members: [member.deviceId, intruder.deviceId].sort() });
      const reported = waitFor<[{ id: string; reason: string }]>(c, "rejected", () => true, 5_000);
      await PouchDB.replicate(relayDb, cDb);
      should((await reported)[0].reason).match(/does not match its content/);
      should(c.acl.group(owner.deviceId, "line-3")?.members).eql([member.deviceId]);
      const intruderDevice = await device(intruder, { peers: [c], rules: [{ effect: "allow", principal: "any", verb: "receive", resource: "*" }] });
      await should(intruderDevice.send(c.id, "t", 1)).be.rejectedWith({ code: "REFUSED" });
      should(rejected.length).be.aboveOrEqual(1);
    } finally {
      await Promise.all([ownerDb.close(), relayDb.close()]);
    }
  });

  it("keeps its own groups across a restart, signed once per change", async () => {
    const dirIdentity = Identity.generate();
    const member = Identity.generate().deviceId;
    const first = await device(dirIdentity, { storage: true, groups: [{ name: "family", members: [member] }] });
    const storageDir = (first as unknown as { options: { storageDir: string } }).options.storageDir;
    should(first.acl.group(first.id, "family")?.version).equal(1);
    await first.stop();
    const again = new Device({ identity: dirIdentity, storageDir, acl: { groups: [{ name: "family", members: [member] }] } });
    devices.push(again);
    await again.start();
    should(again.acl.group(again.id, "family")).containEql({ version: 1, members: [member] });
    await again.setGroup("family", []);
    should(again.acl.group(again.id, "family")?.version).equal(2);
  });

  it("lets only peers allowed to relay reach the mesh store, and the rule's removal shuts the door on the next request", async () => {
    const relayer = Identity.generate();
    const stranger = Identity.generate();
    const b = await device(Identity.generate(), {
      storage: true,
      rules: [
        { effect: "allow", principal: `device:${relayer.deviceId}`, verb: "relay", resource: "mesh" },
        { effect: "allow", principal: `device:${stranger.deviceId}`, verb: "send", resource: "msg/#" },
      ],
    });
    const a = await device(relayer, { peers: [b] });
    const c = await device(stranger, { peers: [b] });
    const fromA = a.databases.remote(b.id, "/mesh");
    const fromC = c.databases.remote(b.id, "/mesh");
    try {
      // Through the replication routes only: the changes B routes to A include B's own device document.
      const listing = await fromA.changes();
      should(listing.results.some((row) => row.id === `dev:${b.id}`)).be.true();
      await should(fromC.changes()).be.rejectedWith({ status: 403 });
      await should(fromC.bulkDocs({ docs: [], new_edits: false } as never)).be.rejectedWith({ status: 403 });

      b.acl.setRules([]);
      await should(fromA.changes()).be.rejectedWith({ status: 403 });
    } finally {
      await Promise.all([fromA.close(), fromC.close()]);
    }
  });

  it("ends an outgoing stream when the sender's own ACL stops letting the peer receive it", async () => {
    const b = await device(Identity.generate(), { rules: [{ effect: "allow", principal: "any", verb: "send", resource: "*" }] });
    const receiverSaw = streamFailure(b);
    const a = await device(Identity.generate(), {
      peers: [b],
      storage: true,
      groups: [{ name: "viewers", members: [b.id] }],
      rules: [{ effect: "allow", principal: "group:viewers", verb: "receive", resource: "stream/#" }],
    });
    const { endless, tenChunksOut } = endlessStream();
    const streaming = a.sendStream(b.id, "camera", endless);
    streaming.catch(() => undefined);
    await tenChunksOut;

    await a.setGroup("viewers", []);
    await should(streaming).be.rejectedWith({ message: /no longer allowed to receive stream\/camera/ });
    should(await receiverSaw).be.an.Error();
    should(endless.destroyed).be.true();
  });
});
