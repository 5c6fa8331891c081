import fs from "node:fs";
import path from "node:path";
import should from "should";
import type { Node } from "node-red";
import { Identity, REVOKED_GROUP, signRotation, verifyRotation } from "../../lib";
import type { IdentityConfigNode } from "../../nodes/shared/identity-node";
import { helper, identityConfig, loadFlow, useNodeRedHelper, useUserDir } from "../helpers/node-red";
import { freePort } from "./fixtures";

describe("identity-config node", () => {
  useNodeRedHelper();

  it("runs the identity from its credentials and listens on the configured port", async () => {
    const identity = Identity.generate();
    const port = await freePort();
    await loadFlow(identityConfig, [{ id: "id1", type: "identity-config", host: "127.0.0.1", port }], {
      id1: { privateKey: identity.privateKeyPem, certificate: identity.certificatePem },
    });
    const node = helper.getNode("id1") as unknown as IdentityConfigNode;
    should(await node.ready).equal(port);
    should(node.device!.id).equal(identity.deviceId);
  });

  it("keeps the same device id across a restart with the same credentials", async () => {
    const identity = Identity.generate();
    const credentials = { id1: { privateKey: identity.privateKeyPem, certificate: identity.certificatePem } };
    const flow = [{ id: "id1", type: "identity-config", host: "127.0.0.1", port: 0 }];
    await loadFlow(identityConfig, flow, credentials);
    const before = (helper.getNode("id1") as unknown as IdentityConfigNode).device!.id;
    await helper.unload();
    await loadFlow(identityConfig, flow, credentials);
    should((helper.getNode("id1") as unknown as IdentityConfigNode).device!.id).equal(before);
  });

  it("makes an identity for a node deployed without one and stores it in the credentials", async () => {
    await loadFlow(identityConfig, [{ id: "id1", type: "identity-config", host: "127.0.0.1", port: 0 }]);
    const node = helper.getNode("id1") as unknown as IdentityConfigNode & Node;
    await node.ready;
    const stored = (helper as unknown as { credentials: { get(id: string): { privateKey: string; certificate: string } } }).credentials.get("id1");
    should(Identity.fromPem(stored.privateKey, stored.certificate).deviceId).equal(node.device!.id);
  });

  it("signs its revoked keys as its revocation list, and refuses a list with something that is not a device id", async () => {
    const [identity, stolen] = [Identity.generate(), Identity.generate()];
    const credentials = { id1: { privateKey: identity.privateKeyPem, certificate: identity.certificatePem } };
    await loadFlow(identityConfig, [{ id: "id1", type: "identity-config", host: "127.0.0.1", port: 0, revoked: `${stolen.deviceId.toUpperCase()}\n` }], credentials);
    const node = helper.getNode("id1") as unknown as IdentityConfigNode;
    await node.ready;
    should(node.device!.acl.group(identity.deviceId, REVOKED_GROUP)).containEql({ members: [stolen.deviceId], version: 1 });
    should(node.device!.acl.isRevoked(stolen.deviceId)).be.true();
    await helper.unload();
    await loadFlow(identityConfig, [{ id: "id1", type: "identity-config", host: "127.0.0.1", port: 0, revoked: "press-7" }], credentials);
    await should((helper.getNode("id1") as unknown as IdentityConfigNode).ready).be.rejectedWith(/revoked-id/) // the helper has no message catalogue;
  });

  it("reports a broken key or half an identity instead of starting", async () => {
    const identity = Identity.generate();
    await loadFlow(identityConfig, [{ id: "id1", type: "identity-config", port: 0 }], { id1: { privateKey: "garbage", certificate: identity.certificatePem } });
    const broken = helper.getNode("id1") as unknown as IdentityConfigNode;
    await should(broken.ready).be.rejectedWith(/private key cannot be read/);
    await helper.unload();
    await loadFlow(identityConfig, [{ id: "id1", type: "identity-config", port: 0 }], { id1: { certificate: identity.certificatePem } });
    await should((helper.getNode("id1") as unknown as IdentityConfigNode).ready).be.rejected();
  });

  it("refuses Tor settings it cannot honour, with the reason", async () => {
    const identity = Identity.generate();
    const credentials = { id1: { privateKey: identity.privateKeyPem, certificate: identity.certificatePem } };
    await loadFlow(identityConfig, [{ id: "id1", type: "identity-config", host: "0.0.0.0", port: 0, tor: "only", torMode: "attach", torControl: "127.0.0.1:9051" }], credentials);
    await should((helper.getNode("id1") as unknown as IdentityConfigNode).ready).be.rejectedWith(/Tor only: the listener on 0\.0\.0\.0 would accept direct connections too/);
    await helper.unload();
    await loadFlow(identityConfig, [{ id: "id1", type: "identity-config", host: "127.0.0.1", port: 0, tor: "on", torMode: "attach", torControl: "not an address" }], credentials);
    await should((helper.getNode("id1") as unknown as IdentityConfigNode).ready).be.rejectedWith(/Tor control port "not an address" is not host:port/);
    await helper.unload();
    // Flows made before Tor existed have no tor property: off.
    await loadFlow(identityConfig, [{ id: "id1", type: "identity-config", host: "127.0.0.1", port: 0 }], credentials);
    const node = helper.getNode("id1") as unknown as IdentityConfigNode;
    await node.ready;
    should(node.device!.torStatus).be.undefined();
  });

  it("reports a port that is taken", async () => {
    const port = await freePort();
    const one = Identity.generate();
    const two = Identity.generate();
    await loadFlow(
      identityConfig,
      [
        { id: "id1", type: "identity-config", host: "127.0.0.1", port },
        { id: "id2", type: "identity-config", host: "127.0.0.1", port },
      ],
      { id1: { privateKey: one.privateKeyPem, certificate: one.certificatePem }, id2: { privateKey: two.privateKeyPem, certificate: two.certificatePem } },
    );
    const results = await Promise.allSettled(["id1", "id2"].map((id) => (helper.getNode(id) as unknown as IdentityConfigNode).ready));
    should(results.filter((r) => r.status === "fulfilled")).have.length(1);
    should(String((results.find((r) => r.status === "rejected") as PromiseRejectedResult).reason)).match(/EADDRINUSE/);
  });

  it("frees its port when closed", async () => {
    const port = await freePort();
    const identity = Identity.generate();
    const creds = { id1: { privateKey: identity.privateKeyPem, certificate: identity.certificatePem } };
    await loadFlow(identityConfig, [{ id: "id1", type: "identity-config", host: "127.0.0.1", port }], creds);
    await (helper.getNode("id1") as unknown as IdentityConfigNode).ready;
    await helper.unload();
    await loadFlow(identityConfig, [{ id: "id1", type: "identity-config", host: "127.0.0.1", port }], creds);
    should(await (helper.getNode("id1") as unknown as IdentityConfigNode).ready).equal(port);
  });

  describe("admin endpoints", () => {
    it("generates a new identity for the dialog", async () => {
      await loadFlow(identityConfig, []);
      const res = await helper.request().post("/peer-mesh/identity/generate").send({ name: "press" }).expect(200);
      should(Identity.fromPem(res.body.privateKey, res.body.certificate).deviceId).equal(res.body.deviceId);
    });

    it("inspects an imported PEM bundle and refuses a broken one with a reason", async () => {
      await loadFlow(identityConfig, []);
      const identity = Identity.generate();
      const res = await helper.request().post("/peer-mesh/identity/inspect").send({ pem: identity.toBundlePem() }).expect(200);
      should(res.body.deviceId).equal(identity.deviceId);
      const bad = await helper.request().post("/peer-mesh/identity/inspect").send({ pem: identity.certificatePem }).expect(400);
      should(bad.body.error).match(/no private key/);
    });

    it("shows a deployed identity's id and port without its key, and exports the PEM bundle", async () => {
      const identity = Identity.generate();
      await loadFlow(identityConfig, [{ id: "id1", type: "identity-config", host: "127.0.0.1", port: 0 }], {
        id1: { privateKey: identity.privateKeyPem, certificate: identity.certificatePem },
      });
      const port = await (helper.getNode("id1") as unknown as IdentityConfigNode).ready;
      const info = await helper.request().get("/peer-mesh/identity/id1").expect(200);
      should(info.body).match({ deviceId: identity.deviceId, port });
      should(info.body).not.have.property("privateKey");
      const exported = await helper.request().get("/peer-mesh/identity/id1/export").expect(200);
      should(Identity.fromBundlePem(exported.text).deviceId).equal(identity.deviceId);
      await helper.request().get("/peer-mesh/identity/nope").expect(404);
    });
  });

  describe("key rotation", () => {
    useUserDir();

    it("Rotate key gives the dialog a new key and a statement the current key signed; the deploy moves the identity and its storage to it", async () => {
      const identity = Identity.generate();
      const flow = [{ id: "id1", type: "identity-config", host: "127.0.0.1", port: 0, databases: "readings" }];
      await loadFlow(identityConfig, flow, { id1: { privateKey: identity.privateKeyPem, certificate: identity.certificatePem } });
      let node = helper.getNode("id1") as unknown as IdentityConfigNode;
      await node.ready;
      await node.device!.databases.open("readings").put({ _id: "kept", celsius: 21 });
      const res = await helper.request().post("/peer-mesh/identity/id1/rotate").send({}).expect(200);
      const next = Identity.fromPem(res.body.privateKey, res.body.certificate);
      should(next.deviceId).equal(res.body.deviceId).and.not.equal(identity.deviceId);
      should(verifyRotation(JSON.parse(res.body.rotation))).match({ from: identity.deviceId, to: next.deviceId });
      await helper.request().post("/peer-mesh/identity/nope/rotate").send({}).expect(404);

      // The dialog keeps the new key and the statement in the credentials; the user deploys.
      await helper.unload();
      await loadFlow(identityConfig, flow, { id1: { privateKey: res.body.privateKey, certificate: res.body.certificate, rotation: res.body.rotation } });
      node = helper.getNode("id1") as unknown as IdentityConfigNode;
      await node.ready;
      should(node.device!.id).equal(next.deviceId);
      const userDir = (helper as unknown as { settings(): { userDir: string } }).settings().userDir;
      should(fs.existsSync(path.join(userDir, "peer-mesh", identity.deviceId))).be.false();
      should((await node.device!.databases.open("readings").get<{ celsius: number }>("kept")).celsius).equal(21);
    });

    it("leaves out a stored rotation that names another key, with a warning", async () => {
      const [old, next, other] = [Identity.generate(), Identity.generate(), Identity.generate()];
      await loadFlow(identityConfig, [{ id: "id1", type: "identity-config", host: "127.0.0.1", port: 0 }], {
        id1: { privateKey: other.privateKeyPem, certificate: other.certificatePem, rotation: JSON.stringify(signRotation(old, next)) },
      });
      const node = helper.getNode("id1") as unknown as IdentityConfigNode & { warn: { args: unknown[][] } };
      await node.ready;
      should(node.device!.id).equal(other.deviceId);
      should((node as unknown as { warn: { calledWithMatch(text: string): boolean } }).warn.calledWithMatch("stale-rotation")).be.true();
    });
  });
});
