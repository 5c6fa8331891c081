import should from "should";
import { Device, Identity, WireError } from "../../lib";
import { freePort } from "../helpers/ports";
import { useDevices } from "../helpers/devices";

/** The keys private discovery's beacon secrets come from: proven by handshakes, for peers only, kept across restarts. */
describe("peer keys learnt from handshakes", function () {
  this.timeout(30_000);
  const { devices, dirs } = useDevices();

  it("both ends of a connection learn each other's key; a stranger's is not kept; a restart on the same storage still has them", async () => {
    const [a, b, stranger] = [Identity.generate(), Identity.generate(), Identity.generate()];
    const bPort = await freePort();
    const bDir = dirs.make();
    const bOptions = { identity: b, port: bPort, storageDir: bDir, peers: [{ id: a.deviceId, name: "A", address: "" }], discovery: { staticProbeIntervalMs: 0 } };
    const deviceA = new Device({ identity: a, storageDir: dirs.make(), peers: [{ id: b.deviceId, name: "B", address: `127.0.0.1:${bPort}` }], discovery: { staticProbeIntervalMs: 0 } });
    let deviceB = new Device(bOptions);
    const deviceS = new Device({ identity: stranger, peers: [{ id: b.deviceId, name: "B", address: `127.0.0.1:${bPort}` }], discovery: { staticProbeIntervalMs: 0 } });
    devices.push(deviceA, deviceB, deviceS);
    await Promise.all(devices.map((device) => device.start()));
    deviceB.onMessage("#", () => undefined);
    should(deviceA.keyOf(b.deviceId)).be.undefined();
    await deviceA.send("B", "hello", 1);
    should(deviceA.keyOf(b.deviceId)?.equals(b.publicKeySpki)).be.true();
    should(deviceB.keyOf(a.deviceId)?.equals(a.publicKeySpki)).be.true();
    should(((await deviceS.send("B", "hello", 1).catch((err: WireError) => err)) as WireError).code).equal("REFUSED");
    should(deviceB.keyOf(stranger.deviceId)).be.undefined();

    await deviceB.stop();
    deviceB = new Device(bOptions);
    devices.push(deviceB);
    await deviceB.start();
    should(deviceB.keyOf(a.deviceId)?.equals(a.publicKeySpki)).be.true();
  });
});
