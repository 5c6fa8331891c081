import should from "should";
import { Device, Identity, WireError } from "../../lib";
import { waitFor } from "../helpers/events";
import { freePort } from "../helpers/ports";
import { useDevices } from "../helpers/devices";
import { overview } from "../../plugins/peer-mesh-sidebar/overview";

/**
 * Introducer onboarding: a gateway trusts whoever a fleet owner puts in its signed group, so a device
 * new to the fleet is let in without pairing with each gateway, and let go when the owner takes it out.
 */
describe("introducers: a signed group lets a new device in without pairing", function () {
  this.timeout(60_000);
  const { devices, dirs, meshOnly } = useDevices();

  it("a newcomer in the owner's group reaches a gateway that never paired with it, which names its introducer (the sidebar's list); out of the group, it is refused", async () => {
    const [owner, gateway, newcomer] = [Identity.generate(), Identity.generate(), Identity.generate()];
    const [ownerPort, gatewayPort] = await Promise.all([freePort(), freePort()]);
    const ownerDevice = new Device({ identity: owner, port: ownerPort, storageDir: dirs.make(), peers: [{ id: gateway.deviceId, name: "gateway", address: `127.0.0.1:${gatewayPort}` }], discovery: { staticProbeIntervalMs: 200 } });
    // The gateway knows the owner only. Its rules: the owner's "fleet" group may send it messages.
    const gatewayDevice = new Device({
      identity: gateway,
      port: gatewayPort,
      storageDir: dirs.make(),
      peers: [{ id: owner.deviceId, name: "fleet owner", address: `127.0.0.1:${ownerPort}` }],
      acl: { rules: [{ effect: "allow", principal: "known", verb: "*", resource: "*" }, { effect: "allow", principal: `group:${owner.deviceId}/fleet`, verb: "send", resource: "msg/fleet/#" }] },
      discovery: { staticProbeIntervalMs: 200 },
    });
    const newcomerDevice = new Device({ identity: newcomer, peers: [{ id: gateway.deviceId, name: "gateway", address: `127.0.0.1:${gatewayPort}` }], discovery: { staticProbeIntervalMs: 0 } });
    devices.push(ownerDevice, gatewayDevice, newcomerDevice);
    await Promise.all(devices.map((device) => device.start()));
    meshOnly(ownerDevice, gatewayDevice);
    const heard: string[] = [];
    gatewayDevice.onMessage("fleet/#", (message) => void heard.push(message.from.id));

    // Before: a stranger to the gateway.
    should((await newcomerDevice.send("gateway", "fleet/hello", 1).then(() => undefined, (err: WireError) => err))?.code).equal("REFUSED");

    // The owner vouches for it; the signed group reaches the gateway through the mesh.
    const principal = `group:${owner.deviceId}/fleet`;
    await ownerDevice.setGroup("fleet", [newcomer.deviceId]);
    const arrived = (): boolean => gatewayDevice.acl.inGroup(principal, newcomer.deviceId);
    if (!arrived()) await waitFor(gatewayDevice.acl, "changed", arrived, 30_000, "the fleet group at the gateway");
    should((await newcomerDevice.send("gateway", "fleet/hello", 2)).receivers).equal(1);
    should(heard).eql([newcomer.deviceId]);
    should(gatewayDevice.acl.introducersOf(newcomer.deviceId)).eql([{ owner: owner.deviceId, group: "fleet" }]);
    should(gatewayDevice.acl.introducersOf(owner.deviceId)).eql([]);
    const [picture] = overview([{ nodeId: "gw", name: "gateway", device: gatewayDevice, host: "127.0.0.1", port: gatewayPort }]);
    should(picture.introduced).eql([{ id: newcomer.deviceId, name: undefined, owner: owner.deviceId, ownerName: "fleet owner", group: "fleet" }]);

    // Taken out of the group: refused again once the new version arrives.
    await ownerDevice.setGroup("fleet", []);
    const left = (): boolean => !gatewayDevice.acl.inGroup(principal, newcomer.deviceId);
    if (!left()) await waitFor(gatewayDevice.acl, "changed", left, 30_000, "the smaller fleet group at the gateway");
    should((await newcomerDevice.send("gateway", "fleet/hello", 3).then(() => undefined, (err: WireError) => err))?.code).equal("REFUSED");
    should(heard).eql([newcomer.deviceId]);
  });
});
