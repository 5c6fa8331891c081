import should from "should";
import { Device, Identity, prometheusText, Traffic } from "../../lib";
import { TempDirs } from "../helpers/storage";

describe("metrics", () => {
  it("keeps the 2,000 most recently active peers: a peer counted again and again is never the one dropped", () => {
    const traffic = new Traffic();
    for (let i = 0; i < 2_000; i++) traffic.received(`p${i}`, "msg", 1);
    traffic.received("p0", "msg", 1);
    traffic.sent("p0", "msg", 1); // the most recent already: counted without reordering
    traffic.received("new", "msg", 1);
    should(traffic.byPeer.size).equal(2_000);
    should(traffic.byPeer.has("p0")).be.true();
    should(traffic.byPeer.has("p1")).be.false();
    should(traffic.byPeer.get("p0")).containEql({ messagesIn: 2, messagesOut: 1 });
    should([...traffic.byPeer.keys()].slice(-2)).eql(["p0", "new"]);
  });

  it("counts per peer and direction, and refusals by kind", () => {
    const traffic = new Traffic();
    traffic.received("p1", "msg", 10);
    traffic.received("p1", "stream", 1000);
    traffic.sent("p1", "msg", 5);
    traffic.refused("acl");
    traffic.refused("acl");
    should(traffic.byPeer.get("p1")).eql({ messagesIn: 1, messagesOut: 1, streamsIn: 1, streamsOut: 0, bytesIn: 1010, bytesOut: 5 });
    should(traffic.refusedByKind.get("acl")).equal(2);
  });

  it("renders label values with quotes, backslashes and line feeds escaped, one HELP and TYPE per family", () => {
    const peer = Identity.generate();
    const device = new Device({ identity: Identity.generate(), peers: [{ id: peer.deviceId, name: 'hall "north"\\\nwing' }], discovery: { staticProbeIntervalMs: 0 } });
    device.traffic.received(peer.deviceId, "msg", 42);
    device.traffic.synced({ peer: peer.deviceId, database: "readings", direction: "both", docsRead: 3, docsWritten: 3, failures: 0, refused: [], bytesSent: 100, bytesReceived: 200, errors: [] }, Date.now() - 5_000);
    const text = prometheusText([{ device, name: "gate" }], Date.now());
    should(text).containEql(`peer_mesh_messages_total{device="${device.id}",identity="gate",peer="${peer.deviceId}",peer_name="hall \\"north\\"\\\\\\nwing",direction="in",kind="message"} 1`);
    should(text).match(/peer_mesh_replication_lag_seconds\{[^}]*database="readings"\} 5\n/);
    should(text.match(/# TYPE peer_mesh_messages_total counter/g)).have.length(1);
    should(text).not.match(/peer_mesh_store_documents/); // not started: no mesh store to count
  });

  it("counts documents purged per database and reason, and each database's size on disk", async () => {
    const dirs = new TempDirs();
    const device = new Device({ identity: Identity.generate(), storageDir: dirs.make(), databases: ["readings"], discovery: { staticProbeIntervalMs: 0 } });
    try {
      await device.start();
      await device.databases.open("readings").bulkDocs([{ _id: "a" }, { _id: "b" }, { _id: "c" }]);
      should(await device.databases.purge("readings", ["a", "b", "nope"])).match({ purged: ["a", "b"], missing: ["nope"] });
      const text = prometheusText([{ device }]);
      should(text).containEql(`peer_mesh_purged_documents_total{device="${device.id}",database="readings",reason="flow"} 2`);
      should(Number(/peer_mesh_database_bytes\{[^}]*database="readings"\} (\d+)/.exec(text)?.[1])).be.above(0);
    } finally {
      await device.stop();
      dirs.removeAll();
    }
  });
});
