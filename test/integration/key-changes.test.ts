import should from "should";
import { Device, Identity, WireError, type KeyChange } from "../../lib";
import { freePort } from "../helpers/ports";

/** A known peer's address where another key answers: a "key changed" warning, never trust. */
describe("key changed", function () {
  this.timeout(30_000);
  const devices: Device[] = [];
  afterEach(async () => {
    await Promise.all(devices.splice(0).map((device) => device.stop()));
  });

  const start = async (identity: Identity, port: number): Promise<Device> => {
    const device = new Device({ identity, port, discovery: { staticProbeIntervalMs: 0 } });
    devices.push(device);
    await device.start();
    return device;
  };
  const next = (device: Device): Promise<[KeyChange, boolean]> => new Promise((resolve) => device.once("key-changed", (change, restored) => resolve([change, restored])));

  it("warns when another key answers at a known peer's address, refuses to send to it there, and clears once the peer's own key is back", async () => {
    const [gateway, impostor, me] = [Identity.generate(), Identity.generate(), Identity.generate()];
    const port = await freePort();
    const stranger = await start(impostor, port);
    const warned = new Promise<[KeyChange, boolean]>((resolve) => {
      const device = new Device({ identity: me, peers: [{ id: gateway.deviceId, name: "gateway", address: `127.0.0.1:${port}` }], discovery: { staticProbeIntervalMs: 200 } });
      devices.push(device);
      device.once("key-changed", (change, restored) => resolve([change, restored]));
      void device.start();
    });
    const [change, restored] = await warned;
    const device = devices[devices.length - 1];
    should(restored).be.false();
    should(change).match({ peerId: gateway.deviceId, name: "gateway", address: `127.0.0.1:${port}`, answeredBy: impostor.deviceId });
    should(device.keyChanges).have.length(1);
    should(device.peerTable.get(gateway.deviceId)).be.undefined(); // never found as the gateway
    const err = await device.send("gateway", "t", 1).then(() => undefined, (e: WireError) => e);
    should(err?.code).equal("IDENTITY_MISMATCH");
    should(device.keyChanges).have.length(1); // the same warning, not a second one

    // The real gateway takes its address back.
    const back = next(device);
    await stranger.stop();
    await new Promise((resolve) => setTimeout(resolve, 500)); // probes find nobody there for a while
    await start(gateway, port);
    const [ended, isRestored] = await back;
    should(isRestored).be.true();
    should(ended.answeredBy).equal(impostor.deviceId);
    should(device.keyChanges).eql([]);
  });
});
