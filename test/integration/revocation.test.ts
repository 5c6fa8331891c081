import should from "should";
import { Device, Identity, REVOKED_GROUP, signGroup, WireError } from "../../lib";
import { waitFor } from "../helpers/events";
import { freePort } from "../helpers/ports";
import { useDevices } from "../helpers/devices";
import { overview } from "../../plugins/peer-mesh-sidebar/overview";

/**
 * A stolen key, revoked fleet-wide by the fleet's owner: the signed revocation list travels through the
 * mesh, and a gateway whose rules name the owner's groups refuses the key everything, even though the
 * gateway's own configuration lists it as a known peer.
 */
describe("fleet-wide revocation of a stolen key", function () {
  this.timeout(60_000);
  const { devices, dirs, meshOnly } = useDevices();

  it("a gateway refuses a revoked key everything once the owner's signed list arrives; an older list or a stranger's list changes nothing", async () => {
    const [owner, gateway, thief] = [Identity.generate(), Identity.generate(), Identity.generate()];
    const [ownerPort, gatewayPort, thiefPort] = await Promise.all([freePort(), freePort(), freePort()]);
    const ownerDevice = new Device({ identity: owner, port: ownerPort, storageDir: dirs.make(), peers: [{ id: gateway.deviceId, name: "gateway", address: `127.0.0.1:${gatewayPort}` }], discovery: { staticProbeIntervalMs: 200 } });
    const gatewayDevice = new Device({
      identity: gateway,
      port: gatewayPort,
      storageDir: dirs.make(),
      // The thief's key was a configured, known peer here (the device it was stolen from).
      peers: [
        { id: owner.deviceId, name: "fleet owner", address: `127.0.0.1:${ownerPort}` },
        { id: thief.deviceId, name: "press 7", address: `127.0.0.1:${thiefPort}` },
      ],
      acl: { rules: [{ effect: "allow", principal: "known", verb: "*", resource: "*" }, { effect: "allow", principal: `group:${owner.deviceId}/fleet`, verb: "*", resource: "*" }] },
      discovery: { staticProbeIntervalMs: 200 },
    });
    const thiefDevice = new Device({ identity: thief, port: thiefPort, peers: [{ id: gateway.deviceId, name: "gateway", address: `127.0.0.1:${gatewayPort}` }], discovery: { staticProbeIntervalMs: 0 } });
    devices.push(ownerDevice, gatewayDevice, thiefDevice);
    await Promise.all(devices.map((device) => device.start()));
    meshOnly(ownerDevice, gatewayDevice);
    const heard: unknown[] = [];
    gatewayDevice.onMessage("#", (message) => void heard.push(message.payload));
    should((await thiefDevice.send("gateway", "readings", 1)).receivers).equal(1);

    // An empty list first (version 1), then the stolen key on it (version 2).
    await ownerDevice.setRevoked([]);
    const emptyList = ownerDevice.acl.group(owner.deviceId, REVOKED_GROUP)!;
    await ownerDevice.setRevoked([thief.deviceId]);
    const revoked = (): boolean => gatewayDevice.acl.isRevoked(thief.deviceId);
    if (!revoked()) await waitFor(gatewayDevice.acl, "changed", revoked, 30_000, "the owner's revocation list at the gateway");
    should(gatewayDevice.acl.revocations()).eql([{ id: thief.deviceId, by: [owner.deviceId] }]);
    const [picture] = overview([{ nodeId: "gw", name: "gateway", device: gatewayDevice, host: "127.0.0.1", port: gatewayPort }]);
    should(picture.revoked).eql([{ id: thief.deviceId, name: "press 7", by: [{ owner: owner.deviceId, name: "fleet owner" }] }]);

    // Refused both ways, though the gateway's configuration still names it.
    const refusal = await thiefDevice.send("gateway", "readings", 2).then(() => undefined, (err: WireError) => err);
    should(refusal?.code).equal("REFUSED");
    should(heard).eql([1]);
    await should(gatewayDevice.send(thief.deviceId, "config", { secret: true })).be.rejectedWith({ code: "REFUSED" });

    // A replayed older list does not undo it; a list signed by a key no rule names revokes nothing.
    should(gatewayDevice.acl.acceptGroup(emptyList)).be.false();
    should(revoked()).be.true();
    should(gatewayDevice.acl.acceptGroup(signGroup(thief, REVOKED_GROUP, [owner.deviceId], 1))).be.true();
    should(gatewayDevice.acl.isRevoked(owner.deviceId)).be.false();
    should(await gatewayDevice.allows(owner.deviceId, "send", "msg/x")).be.true();

    // The owner's newer list without it lets it back in: the owner decides.
    await ownerDevice.setRevoked([]);
    if (revoked()) await waitFor(gatewayDevice.acl, "changed", () => !revoked(), 30_000, "the owner's shorter list at the gateway");
    should((await thiefDevice.send("gateway", "readings", 3)).receivers).equal(1);
  });

  it("refuses a revocation list with something that is not a device id, before signing it", async () => {
    const device = new Device({ identity: Identity.generate(), storageDir: dirs.make() });
    devices.push(device);
    await device.start();
    await should(device.setRevoked(["press-7"])).be.rejectedWith({ code: "BAD_REQUEST" });
  });
});
