import should from "should";
import { Device } from "../../lib";
import type { IdentityConfigNode } from "../../nodes/shared/identity-node";
import { allNodes, helper, loadFlow, useNodeRedHelper } from "../helpers/node-red";
import { ready } from "./flow-helpers";

describe("identity-config pairing (admin endpoints the dialog uses)", function () {
  useNodeRedHelper();

  const pairedOnly = [{ effect: "allow", principal: "group:paired", verb: "*", resource: "*" }];
  const flow = [
    { id: "idHub", type: "identity-config", name: "hub", host: "127.0.0.1", port: 0, rules: pairedOnly },
    { id: "idGuest", type: "identity-config", name: "guest", host: "127.0.0.1", port: 0, rules: pairedOnly },
  ];
  const deviceOf = (id: string): Device => (helper.getNode(id) as unknown as IdentityConfigNode).device!;

  it("shows a code and QR, pairs by the code, and confirms on both sides with the digits shown on the other", async () => {
    await loadFlow(allNodes, flow);
    await ready("idHub", "idGuest");
    const shown = await helper.request().get("/peer-mesh/identity/idHub/pairing-code").expect(200);
    should(shown.body.code).equal(`peer-mesh:${deviceOf("idHub").id}@127.0.0.1:${deviceOf("idHub").port}`);
    should(shown.body.svg).startWith("<svg");

    const asked = await helper.request().post("/peer-mesh/identity/idGuest/pairings").send({ code: shown.body.code }).expect(200);
    should(asked.body).containEql({ direction: "outgoing", peer: { id: deviceOf("idHub").id } });
    const waiting = await helper.request().get("/peer-mesh/identity/idHub/pairings").expect(200);
    should(waiting.body).have.length(1);
    const incoming = waiting.body[0];
    should(incoming.sas).equal(asked.body.sas);

    const wrong = await helper.request().post(`/peer-mesh/identity/idHub/pairings/${incoming.requestId}/confirm`).send({ group: "paired", sas: "000000" === incoming.sas ? "000001" : "000000" }).expect(400);
    should(wrong.body.code).equal("PAIRING_MISMATCH");
    should(deviceOf("idHub").acl.inGroup("group:paired", deviceOf("idGuest").id)).be.false();

    // Again, and this time the user types the right digits.
    const again = await helper.request().post("/peer-mesh/identity/idGuest/pairings").send({ code: shown.body.code }).expect(200);
    const [request] = (await helper.request().get("/peer-mesh/identity/idHub/pairings").expect(200)).body;
    await helper.request().post(`/peer-mesh/identity/idHub/pairings/${request.requestId}/confirm`).send({ group: "paired", sas: again.body.sas }).expect(200);
    await helper.request().post(`/peer-mesh/identity/idGuest/pairings/${again.body.requestId}/confirm`).send({ group: "paired", sas: request.sas }).expect(200);
    should(deviceOf("idHub").acl.inGroup("group:paired", deviceOf("idGuest").id)).be.true();
    deviceOf("idHub").onMessage("#", () => undefined);
    should((await deviceOf("idGuest").send(deviceOf("idHub").id, "hello", 1)).receivers).equal(1);
  });

  it("answers a bad code with 400 and a reason", async () => {
    await loadFlow(allNodes, flow);
    await ready("idHub", "idGuest");
    const res = await helper.request().post("/peer-mesh/identity/idGuest/pairings").send({ code: "nonsense" }).expect(400);
    should(res.body.error).match(/not a pairing code/);
  });
});
