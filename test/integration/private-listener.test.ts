import tls from "node:tls";
import should from "should";
import { Device, Identity, PendingPairing, serverNameFor } from "../../lib";
import { waitFor } from "../helpers/events";
import { freePort } from "../helpers/ports";
import { useDevices } from "../helpers/devices";

/** What a TLS client gets from a listener: the certificate's device id, or the handshake's failure. */
function handshake(port: number, client: Identity, servername?: string): Promise<{ certificate?: string; failed?: string }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: "127.0.0.1", port, key: client.privateKeyPem, cert: client.certificatePem, rejectUnauthorized: false, minVersion: "TLSv1.3", ALPNProtocols: ["h2"], ...(servername ? { servername } : {}) });
    socket.once("secureConnect", () => {
      const certificate = socket.getPeerX509Certificate()?.subject ?? "none";
      socket.destroy();
      resolve({ certificate });
    });
    socket.once("error", (err) => resolve({ failed: err.message }));
  });
}

/** A private listener shows its certificate (and so its id) only to clients that already know the id. */
describe("private listener", function () {
  this.timeout(30_000);
  const { devices } = useDevices();

  it("a stranger's handshake fails before any certificate, with no server name or another's; a client that knows the id gets through, and so do known peers", async () => {
    const [hub, peer, stranger] = [Identity.generate(), Identity.generate(), Identity.generate()];
    const port = await freePort();
    const hubDevice = new Device({ identity: hub, port, peers: [{ id: peer.deviceId, name: "peer", address: "" }], discovery: { staticProbeIntervalMs: 0, privateDiscovery: true } });
    const peerDevice = new Device({ identity: peer, peers: [{ id: hub.deviceId, name: "hub", address: `127.0.0.1:${port}` }], discovery: { staticProbeIntervalMs: 0 } });
    devices.push(hubDevice, peerDevice);
    await Promise.all(devices.map((device) => device.start()));
    hubDevice.onMessage("#", () => undefined);

    should(await handshake(port, stranger)).have.property("failed");
    should(await handshake(port, stranger, "hub.local")).have.property("failed");
    should(await handshake(port, stranger, serverNameFor(stranger.deviceId))).have.property("failed");
    const knowing = await handshake(port, stranger, serverNameFor(hub.deviceId));
    should(knowing.failed).be.undefined();
    should(knowing.certificate).be.a.String();

    should((await peerDevice.send("hub", "hello", 1)).receivers).equal(1);
  });

  it("pairing still works: the code carries the id the guest's handshake needs", async () => {
    const acl = { rules: [{ effect: "allow" as const, principal: "group:paired", verb: "*" as const, resource: "*" }] };
    const hubDevice = new Device({ identity: Identity.generate(), port: await freePort(), acl, discovery: { staticProbeIntervalMs: 0, privateDiscovery: true } });
    const guestDevice = new Device({ identity: Identity.generate(), acl, discovery: { staticProbeIntervalMs: 0 } });
    devices.push(hubDevice, guestDevice);
    await Promise.all(devices.map((device) => device.start()));
    hubDevice.onMessage("#", () => undefined);
    const incoming = waitFor<[PendingPairing]>(hubDevice, "pairing", (p) => p.direction === "incoming", 5_000);
    const outgoing = await guestDevice.pairing.request(hubDevice.pairing.code());
    const [request] = await incoming;
    await hubDevice.pairing.confirm(request.requestId, { group: "paired", sas: outgoing.sas });
    await guestDevice.pairing.confirm(outgoing.requestId, { group: "paired", sas: request.sas });
    should((await guestDevice.send(hubDevice.id, "hello", 1)).receivers).equal(1);
  });
});
