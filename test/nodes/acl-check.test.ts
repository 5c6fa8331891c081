import should from "should";
import { type Device, Identity } from "../../lib";
import { allNodes, helper, loadFlow, useNodeRedHelper } from "../helpers/node-red";
import { collector, inTab } from "./flow-helpers";

describe("acl-check node", function () {
  useNodeRedHelper();
  const member = Identity.generate().deviceId;
  const outsider = Identity.generate().deviceId;

  function flow(check: Record<string, unknown>, identity: Record<string, unknown> = {}) {
    return inTab([
      {
        id: "id", type: "identity-config", host: "127.0.0.1", port: 0,
        groups: [{ name: "family", members: [member] }],
        rules: [{ effect: "allow", principal: "group:family", verb: "send", resource: "msg/door/#" }],
        ...identity,
      },
      { id: "check", type: "acl-check", identity: "id", wires: [["allowed"], ["denied"]], ...check },
      { id: "allowed", type: "helper" },
      { id: "denied", type: "helper" },
      { id: "catcher", type: "catch", scope: null, wires: [["caught"]] },
      { id: "caught", type: "helper" },
    ]);
  }

  it("in group mode, sends members to the first output and others to the second with the reason", async () => {
    await loadFlow(allNodes, flow({ mode: "group", group: "family" }));
    const allowed = collector("allowed");
    const denied = collector("denied");
    const check = helper.getNode("check");
    check.receive({ payload: "open", peer: { id: member } } as never);
    check.receive({ payload: "open", peer: { id: outsider } } as never);
    check.receive({ payload: "open" } as never);
    const [ok] = await allowed.next();
    should(ok).containEql({ payload: "open", acl: { allowed: true } });
    const [notMember, noId] = await denied.next(2);
    should(notMember.acl).containEql({ allowed: false, reason: "acl-check.errors.not-member" });
    should(noId.acl).containEql({ allowed: false, reason: "acl-check.errors.no-id" });
    should(allowed.queue).have.length(0);
  });

  it("in rule mode, asks the identity's rules about the verb on msg/<topic>", async () => {
    await loadFlow(allNodes, flow({ mode: "rule", verb: "send", resource: "" }));
    const allowed = collector("allowed");
    const denied = collector("denied");
    const check = helper.getNode("check");
    check.receive({ topic: "door/unlock", peer: { id: member } } as never);
    check.receive({ topic: "window/open", peer: { id: member } } as never);
    check.receive({ topic: "door/unlock", peer: { id: outsider } } as never);
    should((await allowed.next())[0]).containEql({ topic: "door/unlock" });
    const refused = await denied.next(2);
    should(refused.map((msg) => msg.topic)).eql(["window/open", "door/unlock"]);
  });

  it("in rule mode, answers what the wire would: an authorizer that replaced the rules decides", async () => {
    await loadFlow(allNodes, flow({ mode: "rule", verb: "send", resource: "" }));
    const allowed = collector("allowed");
    const denied = collector("denied");
    const identity = helper.getNode("id") as unknown as { device: Device; ready: Promise<unknown> };
    await identity.ready;
    identity.device.authorize = (peerId, verb, resource) => peerId === outsider && verb === "send" && resource === "msg/window/open";
    const check = helper.getNode("check");
    check.receive({ topic: "door/unlock", peer: { id: member } } as never);
    check.receive({ topic: "window/open", peer: { id: outsider } } as never);
    should((await allowed.next())[0]).containEql({ topic: "window/open" });
    should((await denied.next())[0]).containEql({ topic: "door/unlock" });
  });

  it("reads the device id from another msg property when told to", async () => {
    await loadFlow(allNodes, flow({ mode: "group", group: "family", property: "payload.device" }));
    const allowed = collector("allowed");
    helper.getNode("check").receive({ payload: { device: member } } as never);
    should((await allowed.next())[0].acl).eql({ allowed: true });
  });

  it("passes an input's error to a Catch node when the identity cannot start (invalid rules)", async () => {
    await loadFlow(allNodes, flow({ mode: "group", group: "family" }, { rules: [{ effect: "perhaps", principal: "known", verb: "*", resource: "*" }] }));
    const caught = collector("caught");
    helper.getNode("check").receive({ peer: { id: member } } as never);
    const [msg] = await caught.next();
    should((msg.error as { message: string }).message).match(/rule 1: effect must be allow or deny/);
  });
});
