import { execFileSync } from "node:child_process";
import { generateKeyPairSync, randomBytes, sign as signWith } from "node:crypto";
import fs from "node:fs";
import type { ClientHttp2Session, OutgoingHttpHeaders } from "node:http2";
import path from "node:path";
import should from "should";
import { base32, Device, DeviceOptions, deviceIdOf, Identity, MeshMessage, Rule } from "../../lib";
import { groupDocId, signGroup, verifyGroup } from "../../lib/acl/signed-group";
import { AckDoc, makeAck, makeDeviceDoc, messageDocId, MessageDoc, messageSignedBytes, ackSignedBytes, sealMessage, verifyDeviceDoc } from "../../lib/mesh/envelope";
import { BATCH_PATH, HEADER_MESSAGE_ID, MESSAGE_PATH, PAIRING_PATH } from "../../lib/protocol/wire";
import { withRev } from "../helpers/docs";
import { waitFor } from "../helpers/events";
import { freePort } from "../helpers/ports";
import { closesWithin, rawRequest, rawSession } from "../helpers/raw-client";
import { TempDirs } from "../helpers/storage";

type Doc = Record<string, unknown> & { _id: string };

/** A document with a revision of its own, as PouchDB makes one for each new content (withRev gives every document the same). */
function withFreshRev<T extends { _id: string }>(doc: T, generation = 1): T & { _rev: string; _revisions: { start: number; ids: string[] } } {
  const hash = randomBytes(16).toString("hex");
  return { ...doc, _rev: `${generation}-${hash}`, _revisions: { start: generation, ids: [hash] } };
}
type PushResult = { id?: string; error?: string; reason?: string };

const HOUR = 3_600_000;
const RELAY_RULE = (id: string): Rule => ({ effect: "allow", principal: `device:${id}`, verb: "relay", resource: "mesh" });

/**
 * Hostile peers that hold a valid key of their own: relays allowed to relay, and strangers. Each test
 * here was an attack that worked against the code before the fix (issue 17), tried as an attacker on
 * 127.0.0.1 would; the assertions are the promises the README makes.
 */
describe("hostile relays and strangers", function () {
  this.timeout(120_000);
  const devices: Device[] = [];
  const sessions: ClientHttp2Session[] = [];
  const dirs = new TempDirs();
  afterEach(async () => {
    for (const session of sessions.splice(0)) session.destroy();
    await Promise.all(devices.splice(0).map((device) => device.stop()));
    dirs.removeAll();
  });

  /** A victim `v` with storage, and `r`, a known peer that v's rules let relay (and nothing else unless `rules` says so). */
  async function victimAndRelay(options: { rules?: (r: string) => Rule[]; mesh?: DeviceOptions["mesh"]; limits?: DeviceOptions["limits"]; groups?: Array<{ name: string; members: string[] }>; storageDir?: string; port?: number; vIdentity?: Identity; rIdentity?: Identity; databases?: string[] } = {}) {
    const rIdentity = options.rIdentity ?? Identity.generate();
    const vIdentity = options.vIdentity ?? Identity.generate();
    const storageDir = options.storageDir ?? dirs.make();
    const port = options.port ?? (await freePort());
    const v = new Device({
      identity: vIdentity,
      name: "v",
      port,
      storageDir,
      databases: options.databases,
      peers: [{ id: rIdentity.deviceId, name: "r" }],
      mesh: options.mesh,
      limits: options.limits,
      acl: { rules: options.rules?.(rIdentity.deviceId) ?? [RELAY_RULE(rIdentity.deviceId)], groups: options.groups },
      discovery: { staticProbeIntervalMs: 0 },
    });
    devices.push(v);
    await v.start();
    return { v, rIdentity, storageDir, port };
  }

  async function session(port: number, identity: Identity, localAddress?: string): Promise<ClientHttp2Session> {
    const opened = await rawSession(port, { key: identity.privateKeyPem, cert: identity.certificatePem }, localAddress);
    sessions.push(opened);
    return opened;
  }

  /** What `relay` pushes into `v`'s mesh store as replication would, with each document's outcome (errors only for what passed). */
  async function push(v: Device, relay: Identity, docs: object[]): Promise<PushResult[]> {
    const s = await session(v.port!, relay);
    const answer = await rawRequest(s, { ":method": "POST", ":path": "/mesh/_bulk_docs", "content-type": "application/json" }, JSON.stringify({ docs, new_edits: false }));
    should(answer.status).equal(201);
    return JSON.parse(answer.body) as PushResult[];
  }

  const refusals = (results: PushResult[]): string[] => results.filter((result) => result.error).map((result) => String(result.reason));

  /** A message sealed by `from` to `to` (as the sender's own device would seal it), not yet stored anywhere. */
  function sealed(from: Identity, to: Identity, bytes = 64, options: { mode?: "flood" | "directed"; ttlMs?: number } = {}): MessageDoc & Doc {
    const header = Buffer.from(JSON.stringify({ topic: "t", contentType: "application/octet-stream" }));
    const length = Buffer.alloc(4);
    length.writeUInt32BE(header.length);
    const plaintext = Buffer.concat([length, header, randomBytes(bytes)]);
    return withRev(sealMessage(from, { to: to.deviceId, recipients: [{ id: to.deviceId, key: to.publicKeySpki }], plaintext, mode: options.mode ?? "flood", priority: 4, ttlMs: options.ttlMs ?? HOUR })) as unknown as MessageDoc & Doc;
  }

  /** The same message with some signed fields changed, validly re-signed by `signer` (an attacker signs its own lies). */
  function resigned(doc: MessageDoc, signer: Identity, change: Partial<MessageDoc>): MessageDoc & Doc {
    const next = { ...doc, ...change };
    return { ...next, sig: signer.sign(messageSignedBytes(next)).toString("base64") } as MessageDoc & Doc;
  }

  it("/mesh gives a relay the replication routes only, and only the documents routed to it: no _all_docs, _local, PUT, POST or DELETE", async () => {
    const { v, rIdentity } = await victimAndRelay();
    const x = Identity.generate();
    // X is known to V only by its device document (it came through the mesh), so V can seal to it.
    should(refusals(await push(v, rIdentity, [withRev(makeDeviceDoc(x, {}, "x"))]))).eql([]);
    const directed = await v.mesh.send(x.deviceId, "for x, not through r", { mode: "directed" });
    const flood = await v.mesh.send(x.deviceId, "for everyone to carry", { mode: "flood" });
    should(v.mesh.selectFor(rIdentity.deviceId)).containEql(flood.id).and.not.containEql(directed.id);
    const s = await session(v.port!, rIdentity);
    const request = (method: string, p: string, body?: unknown) => rawRequest(s, { ":method": method, ":path": p, "content-type": "application/json" }, body === undefined ? undefined : JSON.stringify(body));

    // What replication uses works, limited to what V routes to R.
    should((await request("GET", "/mesh/")).status).equal(200);
    const changes = JSON.parse((await request("GET", "/mesh/_changes")).body) as { results: Array<{ id: string }> };
    should(changes.results.map((row) => row.id)).containEql(flood.id).and.not.containEql(directed.id);
    const bulk = JSON.parse((await request("POST", "/mesh/_bulk_get", { docs: [{ id: flood.id }, { id: directed.id }] })).body) as { results: Array<{ id: string; docs: Array<{ ok?: unknown; error?: unknown }> }> };
    should(bulk.results.find((row) => row.id === flood.id)!.docs[0].ok).be.ok();
    should(bulk.results.find((row) => row.id === directed.id)!.docs[0]).have.property("error");
    should((await request("GET", `/mesh/${directed.id}`)).status).equal(404);
    should((await request("GET", `/mesh/${directed.id}/body`)).status).equal(404);
    should((await request("GET", `/mesh/${flood.id}`)).status).equal(200);

    // Everything else is refused, and the documents are untouched.
    const rev = (await v.systemDatabase!.get(flood.id))._rev;
    const localRev = (await v.systemDatabase!.get("_local/peer-mesh-groups").catch(() => ({ _rev: "0-1" })))._rev;
    const refused = [
      await request("GET", "/mesh/_all_docs?include_docs=true"),
      await request("DELETE", `/mesh/${flood.id}?rev=${rev}`),
      await request("PUT", `/mesh/${flood.id}`, { _rev: rev, planted: true }),
      await request("POST", "/mesh/", { _id: "msg:planted" }),
      await request("GET", "/mesh/_local/peer-mesh-groups"),
      await request("DELETE", `/mesh/_local/peer-mesh-groups?rev=${localRev}`),
      await request("POST", "/mesh/_bulk_docs", { docs: [{ _id: flood.id, _rev: rev, _deleted: true }] }),
    ];
    should(refused.map((answer) => answer.status)).eql([403, 403, 403, 403, 403, 403, 403]);
    should(v.mesh.has(flood.id) && v.mesh.has(directed.id)).be.true();
    should((await v.systemDatabase!.get(flood.id))._rev).equal(rev);
  });

  it("a revocation holds against a relay: the groups in force cannot be deleted, an older signed version is refused, and after a restart the revoked member stays out", async () => {
    const member = Identity.generate();
    const vIdentity = Identity.generate();
    const rules = (r: string): Rule[] => [RELAY_RULE(r), { effect: "allow", principal: "group:family", verb: "send", resource: "msg/door/#" }];
    const first = await victimAndRelay({ rules, vIdentity });
    const { v, rIdentity } = first;
    await v.setGroup("family", [member.deviceId]);
    const unlocked: string[] = [];
    v.onMessage("door/#", (message) => void unlocked.push(message.from.id));
    const m = new Device({ identity: member, peers: [{ id: v.id, name: "door", address: `127.0.0.1:${v.port}` }], discovery: { staticProbeIntervalMs: 0 } });
    devices.push(m);
    await m.start();
    await m.send(v.id, "door/unlock", true);
    const signedV1 = await v.systemDatabase!.get(groupDocId(v.id, "family"));
    await v.setGroup("family", []);
    await should(m.send(v.id, "door/unlock", true)).be.rejectedWith({ code: "REFUSED" });

    // The attack: delete the groups in force and the current group document, then push the old signed version back.
    const s = await session(v.port!, rIdentity);
    const local = await v.systemDatabase!.get("_local/peer-mesh-groups");
    const current = await v.systemDatabase!.get(groupDocId(v.id, "family"));
    should((await rawRequest(s, { ":method": "DELETE", ":path": `/mesh/_local/peer-mesh-groups?rev=${local._rev}` })).status).equal(403);
    should((await rawRequest(s, { ":method": "DELETE", ":path": `/mesh/${encodeURIComponent(current._id)}?rev=${current._rev}` })).status).equal(403);
    const { _rev: oldRev, ...v1 } = signedV1 as unknown as Doc;
    void oldRev;
    const [rollback] = refusals(await push(v, rIdentity, [{ ...v1, _rev: "99-0123456789abcdef0123456789abcdef" }]));
    should(rollback).match(/older than the version 2 in force|not newer/);
    should((await v.systemDatabase!.get<{ version: number }>(groupDocId(v.id, "family"))).version).equal(2);

    // A full deploy: the same identity and storage in a new device. The revoked member is still out.
    await v.stop();
    const again = await victimAndRelay({ rules, vIdentity, rIdentity, storageDir: first.storageDir, port: first.port });
    again.v.onMessage("door/#", (message) => void unlocked.push(message.from.id));
    should(again.v.acl.group(v.id, "family")).containEql({ version: 2, members: [] });
    await should(m.send(v.id, "door/unlock", true)).be.rejectedWith({ code: "REFUSED" });
    should(unlocked).eql([member.deviceId]);
  });

  it("the quota counts real sizes: a lying size, extra attachments or fields, a date in the future and everlasting or padded acks are refused; one batch cannot overrun it", async () => {
    const { v, rIdentity } = await victimAndRelay({ mesh: { quota: { docs: 5, bytes: 1024 * 1024 } } });
    const honest = sealed(rIdentity, v.identity, 512 * 1024);
    const lies: Doc[] = [
      resigned(honest, rIdentity, { size: 1 }),
      { ...sealed(rIdentity, v.identity), _attachments: { ...sealed(rIdentity, v.identity)._attachments, extra: { content_type: "application/octet-stream", data: randomBytes(100_000).toString("base64") } } },
      { ...sealed(rIdentity, v.identity), padding: "x".repeat(100_000) },
      resigned(sealed(rIdentity, v.identity), rIdentity, { created: Date.now() + 10 * 24 * HOUR, expires: Date.now() + 10 * 24 * HOUR + HOUR }),
    ];
    const reasons = refusals(await push(v, rIdentity, lies));
    should(reasons).have.length(4);
    should(reasons[0]).match(/says its body is 1 bytes, but it is \d{6}/);
    should(reasons[1]).match(/"body" attachment and nothing else/);
    should(reasons[2]).match(/fields that are not signed: padding/);
    should(reasons[3]).match(/ahead of this device's clock/);

    // Six honest 512 KiB messages in one request against a 1 MiB quota: one fits.
    const six = Array.from({ length: 6 }, () => sealed(rIdentity, v.identity, 512 * 1024));
    const full = refusals(await push(v, rIdentity, six));
    should(full).have.length(5);
    for (const reason of full) should(reason).match(/mesh store is full/);
    should(v.mesh.storedMessages).equal(1);

    // Acks: padded or everlasting ones are refused, and valid ones count against the quota (5 documents).
    const ackFor = (expires: number): AckDoc => makeAck(rIdentity, { _id: messageDocId(), from: v.id, mode: "flood", expires } as MessageDoc);
    const everlasting = ackFor(Date.now() + 100 * 365 * 24 * HOUR);
    const badAcks = refusals(await push(v, rIdentity, [withRev({ ...ackFor(Date.now() + HOUR), pad: "y".repeat(2 * 1024 * 1024) }), withRev(everlasting)]));
    should(badAcks[0]).match(/fields that are not signed: pad/);
    should(badAcks[1]).match(/asks to live longer/);
    const acks = Array.from({ length: 8 }, () => withRev(ackFor(Date.now() + HOUR)));
    should(refusals(await push(v, rIdentity, acks))).have.length(3);
    should(v.mesh.storedAcks).equal(5);
    // An ack re-signed with a changed expiry is still checked against its own signature.
    const stretched = { ...ackFor(Date.now() + HOUR), expires: Date.now() + 365 * 24 * HOUR };
    should(refusals(await push(v, rIdentity, [withRev({ ...stretched, sig: rIdentity.sign(ackSignedBytes(stretched)).toString("base64") })]))[0]).match(/live longer|full/);
  });

  it("groups: only from owners this device knows or names, members and groups per owner capped; relay off holds other owners' groups back", async () => {
    const ownMember = Identity.generate().deviceId;
    const { v, rIdentity } = await victimAndRelay({ groups: [{ name: "line", members: [ownMember] }] });
    const stranger = Identity.generate();
    const members = (n: number): string[] => Array.from({ length: n }, () => base32(randomBytes(32)));
    // 40 groups of a key nobody configured, 1,000 members each: none is kept.
    const strangers = Array.from({ length: 40 }, (_, i) => withRev(signGroup(stranger, `g${i}`, members(1000), 1)));
    const refusedStrangers = refusals(await push(v, rIdentity, strangers));
    should(refusedStrangers).have.length(40);
    should(refusedStrangers[0]).match(/neither a known peer nor named in this device's rules/);
    // A known peer's groups: at most 1,000 members, at most 64 groups.
    should(refusals(await push(v, rIdentity, [withRev(signGroup(rIdentity, "huge", members(1001), 1))]))[0]).match(/1000 at most/);
    const many = Array.from({ length: 70 }, (_, i) => withRev(signGroup(rIdentity, `r${i}`, members(2), 1)));
    should(refusals(await push(v, rIdentity, many))).have.length(6);
    should([...v.mesh.storedIds()].filter((id) => id.startsWith(`group:${rIdentity.deviceId}:`))).have.length(64);
    // A rule naming the stranger's group makes its owner one this device keeps groups of.
    v.acl.setRules([RELAY_RULE(rIdentity.deviceId), { effect: "allow", principal: `group:${stranger.deviceId}/ops`, verb: "send", resource: "msg/#" }]);
    should(refusals(await push(v, rIdentity, [withRev(signGroup(stranger, "ops", members(3), 1))]))).eql([]);

    const neighbour = Identity.generate().deviceId;
    const relayed = v.mesh.selectFor(neighbour).filter((id) => id.startsWith("group:"));
    should(relayed).containEql(groupDocId(v.id, "line")).and.containEql(groupDocId(rIdentity.deviceId, "r0"));
    v.mesh.configure({ relay: false });
    should(v.mesh.selectFor(neighbour).filter((id) => id.startsWith("group:"))).eql([groupDocId(v.id, "line")]);
  });

  it("a stranger is refused before its body is read; /batch is capped near what a client sends; a peer's unfinished bodies are bounded; every request has an idle timeout", async () => {
    const known = Identity.generate();
    const { v } = await victimAndRelay({ rules: () => [{ effect: "allow", principal: `device:${known.deviceId}`, verb: "send", resource: "msg/#" }], limits: { maxPendingBytesPerPeer: 4 * 1024 * 1024, streamIdleMs: 1_000 } });
    v.onMessage("#", () => undefined);
    /** Starts a request, writes `bytes` of its body and leaves it unfinished; resolves with the status when one comes. */
    const unfinished = (s: ClientHttp2Session, headers: OutgoingHttpHeaders, bytes: number): { status: Promise<number | Error> } => {
      const stream = s.request(headers);
      const status = new Promise<number | Error>((resolve) => {
        stream.on("response", (h) => resolve(Number(h[":status"])));
        stream.on("error", (err) => resolve(err));
        stream.on("close", () => resolve(new Error("closed")));
      });
      stream.write(Buffer.alloc(bytes, 1));
      return { status };
    };
    const within = <T>(promise: Promise<T>, ms: number): Promise<T | "no answer"> => Promise.race([promise, new Promise<"no answer">((resolve) => setTimeout(() => resolve("no answer"), ms))]);

    const stranger = await session(v.port!, Identity.generate());
    const strangerBatch = unfinished(stranger, { ":method": "POST", ":path": BATCH_PATH, "content-type": "application/octet-stream" }, 1024 * 1024);
    should(await within(strangerBatch.status, 3_000)).equal(403);

    const s = await session(v.port!, known);
    const tooBig = await rawRequest(s, { ":method": "POST", ":path": BATCH_PATH, "content-type": "application/octet-stream" }, Buffer.alloc(2 * 1024 * 1024));
    should(tooBig.status).equal(413);

    const message = (n: number): OutgoingHttpHeaders => ({ ":method": "POST", ":path": `${MESSAGE_PATH}t`, [HEADER_MESSAGE_ID]: `held-${n}`, "content-type": "application/octet-stream" });
    const held = [unfinished(s, message(1), 1536 * 1024), unfinished(s, message(2), 1536 * 1024)];
    await new Promise((resolve) => setTimeout(resolve, 300));
    const third = unfinished(s, message(3), 1536 * 1024);
    should(await within(third.status, 3_000)).equal(503);
    // The two held requests go idle and are reset; what they held is free again.
    for (const request of held) should(await within(request.status, 4_000)).be.an.Error();
    const after = await rawRequest(s, message(4), "fine");
    should(after.status).equal(200);
  });

  it("256 connections from strangers at one address do not lock out a known peer, and they are closed within seconds", async () => {
    const known = Identity.generate();
    const { v } = await victimAndRelay({ rules: () => [{ effect: "allow", principal: `device:${known.deviceId}`, verb: "send", resource: "msg/#" }], limits: { strangerSessionMs: 1_000 } });
    const delivered: string[] = [];
    v.onMessage("#", (m) => void delivered.push(m.id));
    const attacker = Identity.generate();
    const crowd: ClientHttp2Session[] = [];
    for (let round = 0; round < 8; round++) crowd.push(...(await Promise.all(Array.from({ length: 32 }, () => session(v.port!, attacker, "127.0.0.2")))));
    const a = new Device({ identity: known, peers: [{ id: v.id, name: "v", address: `127.0.0.1:${v.port}` }], discovery: { staticProbeIntervalMs: 0 } });
    devices.push(a);
    await a.start();
    should((await a.send(v.id, "t", "through the crowd")).receivers).equal(1);
    const closed = await Promise.all(crowd.map((one) => closesWithin(one, 4_000)));
    should(closed.filter((c) => !c)).have.length(0);
    should(delivered).have.length(1);
  });

  it("a relay that re-signs a sealed message as its own gets a copy the recipient cannot open; the sender's own copy, arriving later, is delivered once", async () => {
    const { v, rIdentity } = await victimAndRelay();
    const sender = Identity.generate();
    const received: MeshMessage[] = [];
    v.mesh.onMessage((message) => void received.push(message));
    const original = sealed(sender, v.identity);
    const stolen = resigned(original, rIdentity, { from: rIdentity.deviceId, fromKey: rIdentity.publicKeySpki.toString("base64") });
    const rejected = waitFor<[{ id: string; reason: string }]>(v.mesh, "rejected", (info) => info.id === original._id, 10_000, "the re-signed copy refused at opening");
    should(refusals(await push(v, rIdentity, [stolen]))).eql([]);
    should((await rejected)[0].reason).match(/cannot be decrypted/);
    should(received).eql([]);
    // The genuine copy (through another path) takes the id's place and reaches the flow, from its sender.
    should(refusals(await push(v, rIdentity, [original]))).eql([]);
    await waitFor(v.mesh, "stored", () => received.length > 0, 10_000, "the genuine copy delivered");
    should(received.map((message) => message.from)).eql([sender.deviceId]);
  });

  it("keys that are not EC P-256 are refused everywhere: TLS peers (RSA, Ed25519, P-384), group owners and mesh signers", async () => {
    const { v, rIdentity } = await victimAndRelay();
    const refused: string[] = [];
    v.on("refused", (info) => void refused.push(info.reason));
    const dir = dirs.make();
    const kinds: Array<[string, string[]]> = [
      ["RSA-2048", ["-newkey", "rsa:2048"]],
      ["ed25519", ["-newkey", "ed25519"]],
      ["EC secp384r1", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp384r1"]],
    ];
    for (const [kind, args] of kinds) {
      const [keyFile, certFile] = [path.join(dir, "key.pem"), path.join(dir, "cert.pem")];
      execFileSync("openssl", ["req", "-x509", ...args, "-nodes", "-keyout", keyFile, "-out", certFile, "-subj", "/CN=not-a-device", "-days", "2"], { stdio: "ignore" });
      const s = await rawSession(v.port!, { key: fs.readFileSync(keyFile, "utf8"), cert: fs.readFileSync(certFile, "utf8") });
      sessions.push(s);
      const answer = await rawRequest(s, { ":method": "POST", ":path": PAIRING_PATH, "content-type": "application/json" }, "{}").catch((err: Error) => err);
      should(answer instanceof Error || answer.status !== 200).be.true();
      should(refused.some((reason) => reason.includes(kind) && reason.includes("EC P-256"))).be.true();
    }
    should(v.pairing.list()).eql([]);

    /** A signer with an RSA key, shaped like an Identity for the signing helpers. */
    const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const rsa = { deviceId: deviceIdOf(publicKey), shortId: "rsa", publicKeySpki: publicKey.export({ type: "spki", format: "der" }), sign: (data: Buffer) => signWith("sha256", data, privateKey) } as unknown as Identity;
    should(() => verifyGroup(signGroup(rsa, "g", [], 1))).throw(/RSA-2048, not EC P-256/);
    should(() => verifyDeviceDoc(makeDeviceDoc(rsa, {}))).throw(/RSA-2048, not EC P-256/);
    const reasons = refusals(await push(v, rIdentity, [withRev(makeDeviceDoc(rsa, {})), withRev(signGroup(rsa, "g", [], 1))]));
    should(reasons).have.length(2);
    for (const reason of reasons) should(reason).match(/not EC P-256/);
  });

  it("device documents cannot be replayed: an older one, one dated in the future and one with a neighbour seen after it was written are refused; a newer one replaces, whatever revision a relay gave the old", async () => {
    const { v, rIdentity } = await victimAndRelay();
    const a = Identity.generate();
    const now = Date.now();
    const older = makeDeviceDoc(a, {}, "a", now - 60_000);
    const current = makeDeviceDoc(a, {}, "a", now);
    // Stored under a revision far ahead (generation 5), as a relay may hand it on.
    should(refusals(await push(v, rIdentity, [withFreshRev(current, 5)]))).eql([]);
    const replayed = refusals(await push(v, rIdentity, [{ ...older, _rev: "5-0123456789abcdef0123456789abcdef" }]));
    should(replayed[0]).match(/not newer than the copy this device holds/);
    // The current one again, with a revision far ahead: taken as the copy held, nothing written.
    should(refusals(await push(v, rIdentity, [{ ...current, _rev: "999-0123456789abcdef0123456789abcdef" }]))).eql([]);
    const newer = makeDeviceDoc(a, { [rIdentity.deviceId]: now + 5_000 }, "a", now + 5_000);
    should(refusals(await push(v, rIdentity, [withFreshRev(newer, 2)]))).eql([]);
    // The newer copy (generation 2, another branch) is the one read and passed on: the leaf ahead of it is gone.
    const stored = await v.systemDatabase!.get<{ updated: number }>(`dev:${a.deviceId}`, { conflicts: true });
    should(stored.updated).equal(now + 5_000);
    should((stored as { _conflicts?: string[] })._conflicts ?? []).eql([]);
    // Two copies of one device's document arriving at once through two sessions, the older one's revision
    // an ancestor of the newer's (as two neighbours hand them on): the newer stays, nothing is lost.
    for (let k = 0; k < 10; k++) {
      const b = Identity.generate();
      const [first, second] = [randomBytes(16).toString("hex"), randomBytes(16).toString("hex")];
      const older = { ...makeDeviceDoc(b, {}, "b", now), _rev: `1-${first}`, _revisions: { start: 1, ids: [first] } };
      const newer = { ...makeDeviceDoc(b, {}, "b", now + 1), _rev: `2-${second}`, _revisions: { start: 2, ids: [second, first] } };
      await Promise.all([push(v, rIdentity, [newer]), push(v, rIdentity, [older])]);
      should((await v.systemDatabase!.get<{ updated: number }>(`dev:${b.deviceId}`)).updated).equal(now + 1);
      should(v.mesh.has(`dev:${b.deviceId}`)).be.true();
    }
    const future = refusals(await push(v, rIdentity, [withRev(makeDeviceDoc(a, {}, "a", now + 24 * HOUR)), withRev(makeDeviceDoc(a, { [rIdentity.deviceId]: now + HOUR }, "a", now + 10_000))]));
    should(future[0]).match(/ahead of this device's clock/);
    should(future[1]).match(/neighbour seen after the document was written/);
  });

  it("pulling a database does not bring in the peer's design documents", async () => {
    const { v, rIdentity } = await victimAndRelay({ databases: ["readings"], rules: (r) => [{ effect: "allow", principal: `device:${r}`, verb: "*", resource: "db/readings" }] });
    const r = new Device({ identity: rIdentity, storageDir: dirs.make(), databases: ["readings"], peers: [{ id: v.id, name: "v", address: `127.0.0.1:${v.port}` }], discovery: { staticProbeIntervalMs: 0 } });
    devices.push(r);
    await r.start();
    v.addKnownPeer({ id: r.id, name: "r", address: `127.0.0.1:${r.port}` });
    await r.databases.open("readings").bulkDocs([{ _id: "t1", celsius: 21 }, { _id: "_design/evil", views: { all: { map: "function (doc) { emit(doc._id) }" } } }]);
    const report = await v.databases.replicate(r.id, "readings", "pull");
    should((await v.databases.open("readings").get<{ celsius: number }>("t1")).celsius).equal(21);
    await should(v.databases.open("readings").get("_design/evil")).be.rejectedWith({ status: 404 });
    should(report.errors.join("\n")).match(/_design\/evil refused: design documents are never accepted/);
  });
});
