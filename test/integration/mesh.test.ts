import should from "should";
import { Device, Identity, MeshMessage, MeshSync, MeshSyncOptions } from "../../lib";
import { waitFor } from "../helpers/events";
import { freePort } from "../helpers/ports";
import { TempDirs } from "../helpers/storage";

/**
 * Store-and-forward on loopback: each device knows only its neighbours' addresses, so documents reach
 * devices that never connect to each other only through the ones in between.
 */
describe("mesh: store-and-forward through relays", () => {
  const devices: Device[] = [];
  const syncs: MeshSync[] = [];
  const dirs = new TempDirs();
  afterEach(async () => {
    await Promise.all(syncs.splice(0).map((sync) => sync.stop()));
    await Promise.all(devices.splice(0).map((device) => device.stop()));
    dirs.removeAll();
  });

  /** Devices named by letter, linked as `links` says ("ab" = a and b know each other's address). */
  async function topology(names: string, links: string[], sync: Partial<MeshSyncOptions> = {}): Promise<Record<string, Device>> {
    const identities = Object.fromEntries([...names].map((name) => [name, Identity.generate()]));
    const ports = Object.fromEntries(await Promise.all([...names].map(async (name) => [name, await freePort()] as const)));
    const neighbours = (name: string): string[] => links.flatMap((link) => (link[0] === name ? [link[1]] : link[1] === name ? [link[0]] : []));
    const created: Record<string, Device> = {};
    for (const name of names) {
      created[name] = new Device({
        identity: identities[name],
        name,
        port: ports[name],
        storageDir: dirs.make(),
        peers: neighbours(name).map((other) => ({ id: identities[other].deviceId, name: other, address: `127.0.0.1:${ports[other]}` })),
        discovery: { staticProbeIntervalMs: 500 },
      });
      devices.push(created[name]);
    }
    await Promise.all(Object.values(created).map((device) => device.start()));
    for (const device of Object.values(created)) {
      const meshSync = new MeshSync(device, { databases: [], direction: "both", mesh: true, policy: { intervalMs: 0 }, ...sync });
      syncs.push(meshSync);
      meshSync.start();
    }
    return created;
  }

  async function knows(device: Device, other: Device): Promise<void> {
    if (device.mesh.has(`dev:${other.id}`)) return;
    await waitFor(device.mesh, "stored", () => device.mesh.has(`dev:${other.id}`), 10_000, `${other.id.slice(0, 8)}'s device document`);
  }

  function received(device: Device): MeshMessage[] {
    const messages: MeshMessage[] = [];
    device.mesh.onMessage((message) => messages.push(message));
    return messages;
  }

  it("carries a message and a 1 MB binary from A to C through B on a line, and C's ack purges B's copy", async () => {
    const { a, b, c } = await topology("abc", ["ab", "bc"]);
    const atC = received(c);
    await knows(a, c);
    const picture = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < picture.length; i++) picture[i] = (i * 7) & 0xff;

    const acked = waitFor<[{ id: string; by: string }]>(a.mesh, "acked", () => true, 20_000);
    const text = await a.mesh.send(c.id, { temperature: 21.5 }, { topic: "line-3/temp" });
    const binary = await a.mesh.send("c", picture, { topic: "camera", priority: 7 });
    should(binary.recipients).eql([c.id]);
    await waitFor(c.mesh, "stored", () => atC.length === 2, 20_000, "both messages at C");
    const byTopic = Object.fromEntries(atC.map((message) => [message.topic, message]));
    should(byTopic["line-3/temp"].payload).eql({ temperature: 21.5 });
    should(byTopic["line-3/temp"].from).equal(a.id);
    should(Buffer.compare(byTopic.camera.payload as Buffer, picture)).equal(0);
    should((await acked)[0].by).equal(c.id);

    // Acks travel back: B drops its relayed copies.
    for (const id of [text.id, binary.id]) {
      if (b.mesh.has(id)) await waitFor(b.mesh, "stored", () => !b.mesh.has(id), 10_000, `B purging ${id}`);
    }
    should(atC.length).equal(2); // exactly once
  });

  it("keeps the body secret from the relay, and C refuses a copy whose body was altered on the way", async () => {
    const { a, b, c } = await topology("abc", ["ab", "bc"], { policy: { intervalMs: 60_000 } });
    void b;
    await Promise.all([...syncs.map((sync) => sync.settled())]);
    syncs.forEach((sync) => sync.syncAll());
    await Promise.all([...syncs.map((sync) => sync.settled())]);
    syncs.forEach((sync) => sync.syncAll());
    await knows(a, c);
    const sent = await a.mesh.send(c.id, "for C only");
    const doc = await a.systemDatabase!.get<Record<string, unknown>>(sent.id, { attachments: true, revs: true } as never);
    const { openMessage } = await import("../../lib/mesh/envelope");
    const attachments = doc._attachments as Record<string, { data: string }>;
    const body = Buffer.from(attachments.body.data, "base64");
    should(() => openMessage(b.identity, doc as never, body)).throw(/not addressed to/);
    should(body.includes(Buffer.from("for C only"))).be.false();

    body[body.length - 1] ^= 1;
    const altered = { ...doc, _attachments: { body: { ...attachments.body, data: body.toString("base64") } } };
    const rejected = waitFor<[{ id: string; reason: string }]>(c.mesh, "rejected", () => true, 5_000);
    const [result] = await c.mesh.ingest([altered as never]);
    should(result).have.property("error", "forbidden");
    should((await rejected)[0].reason).match(/altered/);
    should(c.mesh.has(sent.id)).be.false();
  });
});
