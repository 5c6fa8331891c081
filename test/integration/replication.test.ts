import https from "node:https";
import PouchDB from "pouchdb-node";
import should from "should";
import { Device, Identity, Rule } from "../../lib";
import { freePort } from "../helpers/ports";
import { TempDirs } from "../helpers/storage";

interface Spec {
  /** Given every device's id, in order. */
  rules?: (ids: string[]) => Rule[];
  databases?: string[];
}

/** Databases replicated between devices through the wire's CouchDB protocol, mutual TLS and the ACL. */
describe("replication over the wire", () => {
  const devices: Device[] = [];
  const dirs = new TempDirs();
  afterEach(async () => {
    await Promise.all(devices.splice(0).map((device) => device.stop()));
    dirs.removeAll();
  });

  /** Devices on 127.0.0.1 that all know each other's ids and addresses. */
  async function mesh(...specs: Spec[]): Promise<Device[]> {
    const identities = specs.map(() => Identity.generate());
    const ports = await Promise.all(specs.map(() => freePort()));
    const created = specs.map((spec, i) => new Device({
      identity: identities[i],
      port: ports[i],
      storageDir: dirs.make(),
      databases: spec.databases ?? ["readings"],
      acl: { rules: spec.rules?.(identities.map((identity) => identity.deviceId)) },
      peers: identities.flatMap((other, j) => (j === i ? [] : [{ id: other.deviceId, name: `d${j}`, address: `127.0.0.1:${ports[j]}` }])),
      discovery: { staticProbeIntervalMs: 0 },
    }));
    devices.push(...created);
    await Promise.all(created.map((d) => d.start()));
    return created;
  }

  it("pushes JSON documents and binary attachments to a peer and pulls the peer's back", async () => {
    const [a, b] = await mesh({}, {});
    const picture = Buffer.alloc(300 * 1024, 7);
    await a.databases.open("readings").bulkDocs([
      { _id: "r1", value: 21.5 },
      { _id: "r2", value: 22 },
      { _id: "photo", _attachments: { "frame.bin": { content_type: "application/octet-stream", data: picture } } } as never,
    ]);
    await b.databases.open("readings").put({ _id: "from-b", value: 1 });

    const report = await a.databases.replicate("d1", "readings", "both");
    should(report.docsWritten).equal(4); // three pushed, one pulled
    should(report.bytesSent).be.above(picture.length); // the attachment travelled
    const copy = await b.databases.open("readings").getAttachment("photo", "frame.bin");
    should(Buffer.compare(copy, picture)).equal(0);
    should((await b.databases.open("readings").get<{ value: number }>("r1")).value).equal(21.5);
    should((await a.databases.open("readings").get<{ value: number }>("from-b")).value).equal(1);

    const again = await a.databases.replicate("d1", "readings", "both");
    should(again.docsWritten).equal(0); // checkpoints: nothing moves twice
  });

  it("pushes in full batches of 100: a local read's changes reach the replicator as one page (it sent 1,000 documents in ~50 batches of ~20, four requests each)", async () => {
    const [a, b] = await mesh({}, {});
    await a.databases.open("readings").bulkDocs(Array.from({ length: 1_000 }, (_, i) => ({ _id: `r-${String(i).padStart(4, "0")}`, value: i, note: "x".repeat(60) })));
    const target = b.databases.open("readings");
    const batches: number[] = [];
    const bulkDocs = target.bulkDocs.bind(target);
    target.bulkDocs = ((request: { docs: unknown[]; new_edits?: boolean }, ...rest: unknown[]) => {
      if (request.new_edits === false) batches.push(request.docs.length); // what a replication writes
      return bulkDocs(request as never, ...(rest as []));
    }) as typeof target.bulkDocs;
    const report = await a.databases.replicate("d1", "readings", "push");
    should(report.docsWritten).equal(1_000);
    should((await target.info()).doc_count).equal(1_000);
    should(batches).eql(Array.from({ length: 10 }, () => 100));
  });

  it("lets a peer with read access pull but refuses its replicated and its direct writes", async () => {
    const readOnly = (ids: string[]): Rule[] => [{ effect: "allow", principal: `device:${ids[0]}`, verb: "read", resource: "db/readings" }];
    const [reader, owner] = await mesh({}, { rules: readOnly });
    await owner.databases.open("readings").put({ _id: "setpoint", value: 50 });
    await reader.databases.open("readings").put({ _id: "forged", value: 99 });

    const pulled = await reader.databases.replicate("d1", "readings", "pull");
    should(pulled.docsWritten).equal(1);
    should((await reader.databases.open("readings").get<{ value: number }>("setpoint")).value).equal(50);

    const pushed = await reader.databases.replicate("d1", "readings", "push").then(() => undefined, (err: Error) => err);
    should(pushed).be.an.Error();
    should(String(pushed)).match(/may not write/);
    await should(owner.databases.open("readings").get("forged")).be.rejectedWith({ status: 404 });

    // A stock PouchDB on the reader's side, writing one document through the same wire, is refused too.
    const remote = reader.databases.remote(owner.id, "/db/readings");
    await should(remote.put({ _id: "direct", value: 1 })).be.rejectedWith({ status: 403 });
    await remote.close();
  });

  it("refuses a peer with no rule for the database and one asking for a database the device does not keep", async () => {
    const none = (): Rule[] => [{ effect: "allow", principal: "known", verb: "send", resource: "*" }];
    const [a, b] = await mesh({}, { rules: none });
    await should(a.databases.replicate("d1", "readings", "pull")).be.rejectedWith(/neither read nor write/);
    // A peer with no rule for a database learns nothing, not even whether the device keeps one of that name.
    const elsewhere = a.databases.remote(b.id, "/db/secrets");
    await should(elsewhere.allDocs()).be.rejectedWith({ status: 403, reason: /neither read nor write db\/secrets/ });
    await elsewhere.close();
  });

  it("tells a peer allowed on every database which ones the device does not keep", async () => {
    const all = (): Rule[] => [{ effect: "allow", principal: "known", verb: "read", resource: "db/*" }];
    const [a, b] = await mesh({}, { rules: all });
    const elsewhere = a.databases.remote(b.id, "/db/secrets");
    await should(elsewhere.allDocs()).be.rejectedWith({ status: 404, reason: /keeps no database "secrets"/ });
    await elsewhere.close();
  });

  it("serves a CouchDB-protocol client on HTTP/1.1 with a client certificate (stock PouchDB on node-fetch)", async () => {
    const [owner] = await mesh({ rules: () => [{ effect: "allow", principal: "any", verb: "read", resource: "db/readings" }] });
    await owner.databases.open("readings").bulkDocs([{ _id: "a", n: 1 }, { _id: "b", n: 2 }]);
    const client = Identity.generate();
    const agent = new https.Agent({ key: client.privateKeyPem, cert: client.certificatePem, rejectUnauthorized: false, keepAlive: false });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const nodeFetch = require("node-fetch") as (url: string, init: object) => Promise<Response>;
    const stock = new PouchDB(`https://127.0.0.1:${owner.port}/db/readings`, { fetch: (url, init) => nodeFetch(url, { ...init, agent }), skip_setup: true });
    const local = new PouchDB(`${dirs.make()}/copy`);
    try {
      const result = await PouchDB.replicate(stock, local);
      should(result.docs_written).equal(2);
      should((await local.get<{ n: number }>("b")).n).equal(2);
      await should(stock.put({ _id: "c", n: 3 })).be.rejectedWith({ status: 403 });
    } finally {
      await local.close();
      await stock.close();
      agent.destroy();
    }
  });
});
