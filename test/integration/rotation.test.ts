import should from "should";
import { Device, Identity, signRotation, verifyRotation, type MeshMessage } from "../../lib";
import { waitFor } from "../helpers/events";
import { freePort } from "../helpers/ports";
import { useDevices } from "../helpers/devices";
import { overview } from "../../plugins/peer-mesh-sidebar/overview";

/**
 * A device moves to a new key: it signs a rotation statement with the old key (and the new), and the
 * fleet follows. The gateway that knew the old key at its address asks the new key for the statement,
 * takes the new key in its place (peer entry, its own group, signed again), and refuses the old key;
 * a third device that let the old key in through the gateway's group follows the new version, and a mesh
 * message it addresses to the old id reaches the new key.
 */
describe("key rotation", function () {
  this.timeout(90_000);
  const { devices, dirs, meshOnly } = useDevices();

  it("peers, group owners and rules follow a device to its new key; the old key is refused, and the mesh routes to the new one", async () => {
    const [oldKey, newKey, gateway, hub] = [Identity.generate(), Identity.generate(), Identity.generate(), Identity.generate()];
    const [sensorPort, gatewayPort, hubPort] = await Promise.all([freePort(), freePort(), freePort()]);
    const sensorDir = dirs.make();
    const sensorPeers = [{ id: gateway.deviceId, name: "gateway", address: `127.0.0.1:${gatewayPort}` }];
    const sensor = new Device({ identity: oldKey, port: sensorPort, storageDir: sensorDir, peers: sensorPeers, discovery: { staticProbeIntervalMs: 200 } });
    // The gateway knows the sensor by its key and address, and vouches for it in its group "line".
    const gatewayDevice = new Device({
      identity: gateway,
      port: gatewayPort,
      storageDir: dirs.make(),
      peers: [
        { id: oldKey.deviceId, name: "press sensor", address: `127.0.0.1:${sensorPort}` },
        { id: hub.deviceId, name: "hub", address: `127.0.0.1:${hubPort}` },
      ],
      acl: { rules: [{ effect: "allow", principal: "known", verb: "*", resource: "*" }], groups: [{ name: "line", members: [oldKey.deviceId] }] },
      discovery: { staticProbeIntervalMs: 200 },
    });
    // The hub has never met the sensor: it lets in whoever the gateway's group "line" holds.
    const hubDevice = new Device({
      identity: hub,
      port: hubPort,
      storageDir: dirs.make(),
      peers: [{ id: gateway.deviceId, name: "gateway", address: `127.0.0.1:${gatewayPort}` }],
      acl: { rules: [{ effect: "allow", principal: "known", verb: "*", resource: "*" }, { effect: "allow", principal: `group:${gateway.deviceId}/line`, verb: "*", resource: "*" }] },
      discovery: { staticProbeIntervalMs: 200 },
    });
    devices.push(sensor, gatewayDevice, hubDevice);
    await Promise.all(devices.map((device) => device.start()));
    meshOnly(gatewayDevice, hubDevice);
    const inLine = (): boolean => !!hubDevice.acl.group(gateway.deviceId, "line");
    if (!inLine()) await waitFor(hubDevice.acl, "changed", inLine, 30_000, "the gateway's group at the hub");
    should(await hubDevice.allows(oldKey.deviceId, "send", "msg/x")).be.true();

    // The sensor moves to its new key, on the same address and storage.
    await sensor.stop();
    devices.splice(devices.indexOf(sensor), 1);
    const statement = signRotation(oldKey, newKey);
    const moved = new Device({ identity: newKey, rotatedFrom: statement, port: sensorPort, storageDir: sensorDir, peers: sensorPeers, discovery: { staticProbeIntervalMs: 200 } });
    devices.push(moved);
    await moved.start();
    meshOnly(moved);

    // The gateway finds the new key at the sensor's address, asks it for its statement and follows it.
    const followed = (): boolean => gatewayDevice.acl.successorOf(oldKey.deviceId) === newKey.deviceId;
    if (!followed()) await waitFor(gatewayDevice, "rotated", followed, 30_000, "the gateway following the rotation");
    // The configured entry stays under the old key; its name and "known" reach the new key through the rotation.
    should(gatewayDevice.resolvePeer("press sensor")).equal(newKey.deviceId);
    should(gatewayDevice.acl.group(gateway.deviceId, "line")!.members).eql([newKey.deviceId]);
    should(gatewayDevice.acl.group(gateway.deviceId, "line")!.version).equal(2);
    const [picture] = overview([{ nodeId: "gw", name: "gateway", device: gatewayDevice, host: "127.0.0.1", port: gatewayPort }]);
    should(picture.rotated).eql([{ from: oldKey.deviceId, to: newKey.deviceId, name: "press sensor", at: statement.at }]);
    should(await gatewayDevice.allows(oldKey.deviceId, "send", "msg/x")).be.false();
    should(await gatewayDevice.allows(newKey.deviceId, "send", "msg/x")).be.true();
    // The new key at the old address is the peer itself: no "key changed" warning stays.
    const noWarning = (): boolean => gatewayDevice.keyChanges.length === 0;
    if (!noWarning()) await waitFor(gatewayDevice, "key-changed", noWarning, 10_000, "the key-changed warning to end");
    should(gatewayDevice.keyChanges).eql([]);

    // A direct message to the sensor by its configured name, or by its old id, reaches the new key.
    const heard: unknown[] = [];
    moved.onMessage("#", (message) => void heard.push(message.payload));
    should((await gatewayDevice.send("press sensor", "config", { rate: 1 })).receivers).equal(1);
    should((await gatewayDevice.send(oldKey.deviceId, "config", { rate: 2 })).receivers).equal(1);
    should(heard).eql([{ rate: 1 }, { rate: 2 }]);

    // The hub gets the group's new version and the sensor's device document through the mesh, and follows.
    const hubFollows = (): boolean => hubDevice.acl.successorOf(oldKey.deviceId) === newKey.deviceId && hubDevice.acl.group(gateway.deviceId, "line")?.version === 2;
    if (!hubFollows()) await waitFor(hubDevice.acl, "changed", hubFollows, 30_000, "the hub following the rotation");
    should(await hubDevice.allows(newKey.deviceId, "send", "msg/x")).be.true();
    should(await hubDevice.allows(oldKey.deviceId, "send", "msg/x")).be.false();

    // A mesh message the hub addresses to the old id is sealed to the new key, relayed, and read there.
    const received = new Promise<MeshMessage>((resolve) => moved.mesh.onMessage(resolve));
    const sent = await hubDevice.mesh.send(oldKey.deviceId, { setpoint: 42 });
    should(sent.recipients).eql([newKey.deviceId]);
    const message = await received;
    should(message.payload).eql({ setpoint: 42 });
    should(message.from).equal(hub.deviceId);
  });

  it("a statement proves both keys: altered, reversed or naming another key, it is refused", () => {
    const [a, b, c] = [Identity.generate(), Identity.generate(), Identity.generate()];
    const statement = signRotation(a, b);
    should(verifyRotation(JSON.parse(JSON.stringify(statement)))).eql(statement);
    should(() => verifyRotation({ ...statement, to: c.deviceId })).throw(/not .*'s|does not match/);
    should(() => verifyRotation({ ...statement, at: statement.at + 1 })).throw(/does not match/);
    // The new key must sign too: nobody can claim another device's key as their new one.
    const claimed = signRotation(a, c);
    should(() => verifyRotation({ ...claimed, toKey: b.publicKeySpki.toString("base64"), to: b.deviceId })).throw();
    should(() => verifyRotation({ ...statement, extra: 1 })).throw(/not signed/);
    should(() => signRotation(a, a)).throw(/itself/);
  });

  it("a message to a peer that moved reaches its new key at the old key's address, before any transport has found the new key", async () => {
    const [sender, oldKey, newKey] = [Identity.generate(), Identity.generate(), Identity.generate()];
    const port = await freePort();
    // No probing: the sender's transports never find the new key on their own.
    const device = new Device({ identity: sender, peers: [{ id: oldKey.deviceId, name: "press", address: `127.0.0.1:${port}` }], discovery: { staticProbeIntervalMs: 0 } });
    const moved = new Device({ identity: newKey, rotatedFrom: signRotation(oldKey, newKey), port, peers: [{ id: sender.deviceId, name: "sender" }], discovery: { staticProbeIntervalMs: 0 } });
    devices.push(device, moved);
    await Promise.all([device.start(), moved.start()]);
    const heard: unknown[] = [];
    moved.onMessage("#", (message) => void heard.push(message.payload));
    should(device.acl.acceptRotation(signRotation(oldKey, newKey))).be.true();
    should((await device.send("press", "config", 1)).receivers).equal(1);
    should((await device.send(oldKey.deviceId, "config", 2)).receivers).equal(1);
    should(heard).eql([1, 2]);
  });

  it("revoking a stolen key voids its rotation: the key it moved to is revoked with it and inherits nothing", async () => {
    const [owner, stolen, thief] = [Identity.generate(), Identity.generate(), Identity.generate()];
    const device = new Device({ identity: owner, storageDir: dirs.make(), peers: [{ id: stolen.deviceId, name: "press" }], acl: { rules: [{ effect: "allow", principal: "known", verb: "*", resource: "*" }], groups: [{ name: "line", members: [stolen.deviceId] }] } });
    devices.push(device);
    await device.start();
    // Whoever holds the stolen key can sign its rotation to a key of their own.
    should(device.acl.acceptRotation(signRotation(stolen, thief))).be.true();
    should(await device.allows(thief.deviceId, "send", "msg/x")).be.true();
    should(device.resolvePeer("press")).equal(thief.deviceId);
    await device.setRevoked([stolen.deviceId]);
    should(device.acl.revocations().map((entry) => entry.id).sort()).eql([stolen.deviceId, thief.deviceId].sort());
    should(await device.allows(thief.deviceId, "send", "msg/x")).be.false();
    should(await device.allows(stolen.deviceId, "send", "msg/x")).be.false();
    should(device.acl.successorOf(stolen.deviceId)).equal(stolen.deviceId);
    should(device.resolvePeer("press")).equal(stolen.deviceId);
  });

  it("the first statement for a key stands, one from or to a revoked key gives nothing, and a key nobody here names is not followed", async () => {
    const [owner, a, b, thief, stranger, other] = [Identity.generate(), Identity.generate(), Identity.generate(), Identity.generate(), Identity.generate(), Identity.generate()];
    const device = new Device({ identity: owner, storageDir: dirs.make(), peers: [{ id: a.deviceId, name: "a" }] });
    devices.push(device);
    await device.start();
    should(device.acl.acceptRotation(signRotation(stranger, other))).be.false(); // nobody here names it
    should(device.acl.acceptRotation(signRotation(a, b))).be.true();
    should(device.acl.acceptRotation(signRotation(a, thief))).be.false(); // a second statement for the same key
    should(device.acl.successorOf(a.deviceId)).equal(b.deviceId);
    should(await device.allows(b.deviceId, "send", "msg/x")).be.true(); // "known", inherited from a
    await device.setRevoked([b.deviceId]);
    should(device.acl.successorOf(a.deviceId)).equal(a.deviceId);
    should(await device.allows(b.deviceId, "send", "msg/x")).be.false();
    should(await device.allows(a.deviceId, "send", "msg/x")).be.false(); // retired all the same
  });
});
