import should from "should";
import { Acl, AclError, GroupError, Identity, resourceMatches, REVOKED_GROUP, signGroup, verifyGroup, VERBS } from "../../lib";
import { compileResource } from "../../lib/acl/rules";

describe("Acl rules", () => {
  const self = Identity.generate();
  const alice = Identity.generate().deviceId;
  const bob = Identity.generate().deviceId;
  const stranger = Identity.generate().deviceId;

  function aclWith(rules: unknown[], known: string[] = []): Acl {
    const acl = new Acl({ selfId: self.deviceId, rules: rules as never, isKnown: (id) => known.includes(id) });
    acl.acceptGroup(signGroup(self, "family", [alice], 1));
    return acl;
  }

  it("decides the same with few rules naming a device (on the spot) and many (through the decision cache), and follows rule changes", () => {
    const many = Array.from({ length: 40 }, (_, i) => ({ effect: "allow", principal: "group:family", verb: "send", resource: `msg/room${i}/#` }));
    for (const rules of [[], many]) {
      const acl = aclWith([...rules, { effect: "allow", principal: "group:family", verb: "send", resource: "msg/door/#" }, { effect: "deny", principal: `device:${alice}`, verb: "send", resource: "msg/door/secret" }]);
      for (let round = 0; round < 2; round++) {
        should(acl.authorize(alice, "send", "msg/door/front")).be.true();
        should(acl.authorize(alice, "send", "msg/door/secret")).be.false(); // deny wins
        should(acl.authorize(alice, "read", "msg/door/front")).be.false();
        should(acl.authorize(bob, "send", "msg/door/front")).be.false();
      }
      acl.setRules([...rules]);
      should(acl.authorize(alice, "send", "msg/door/front")).be.false();
    }
  });

  it("by default lets known peers do anything and unknown keys nothing", () => {
    const acl = new Acl({ selfId: self.deviceId, isKnown: (id) => id === alice });
    should(acl.authorize(alice, "write", "db/readings")).be.true();
    should(acl.authorize(stranger, "send", "msg/x")).be.false();
  });

  it("matches each principal kind: a device, a group, known peers, any authenticated device", () => {
    const acl = aclWith(
      [
        { effect: "allow", principal: `device:${bob}`, verb: "send", resource: "msg/bob/#" },
        { effect: "allow", principal: "group:family", verb: "send", resource: "msg/door/+" },
        { effect: "allow", principal: "known", verb: "read", resource: "db/readings" },
        { effect: "allow", principal: "any", verb: "send", resource: "msg/public" },
      ],
      [bob],
    );
    should(acl.authorize(bob, "send", "msg/bob/a/b")).be.true();
    should(acl.authorize(alice, "send", "msg/bob/a")).be.false();
    should(acl.authorize(alice, "send", "msg/door/front")).be.true();
    should(acl.authorize(alice, "send", "msg/door/front/lock")).be.false();
    should(acl.authorize(bob, "read", "db/readings")).be.true();
    should(acl.authorize(alice, "read", "db/readings")).be.false();
    should(acl.authorize(stranger, "send", "msg/public")).be.true();
    should(acl.authorize(stranger, "send", "msg/door/front")).be.false();
  });

  it("keeps read and write apart: a reader cannot write", () => {
    const acl = aclWith([{ effect: "allow", principal: "group:family", verb: "read", resource: "db/*" }]);
    should(acl.authorize(alice, "read", "db/photos")).be.true();
    should(acl.authorize(alice, "write", "db/photos")).be.false();
  });

  it("lets deny beat allow, in any order", () => {
    const rules = [
      { effect: "deny", principal: `device:${alice}`, verb: "*", resource: "msg/door/unlock" },
      { effect: "allow", principal: "group:family", verb: "*", resource: "*" },
    ];
    for (const ordered of [rules, [...rules].reverse()]) {
      const acl = aclWith(ordered);
      should(acl.authorize(alice, "send", "msg/door/unlock")).be.false();
      should(acl.authorize(alice, "send", "msg/door/lock")).be.true();
    }
  });

  it("takes a new rule or membership into account on the next decision (the decision cache is dropped)", () => {
    const acl = aclWith([{ effect: "allow", principal: "group:family", verb: "send", resource: "*" }]);
    should(acl.authorize(alice, "send", "msg/x")).be.true();
    should(acl.authorize(bob, "send", "msg/x")).be.false();
    let changes = 0;
    acl.on("changed", () => changes++);
    acl.acceptGroup(signGroup(self, "family", [bob], 2));
    should(acl.authorize(alice, "send", "msg/x")).be.false();
    should(acl.authorize(bob, "send", "msg/x")).be.true();
    acl.setRules([]);
    should(acl.authorize(bob, "send", "msg/x")).be.false();
    should(changes).equal(2);
  });

  it("names groups of other owners by owner id, never confusing them with its own of the same name", () => {
    const other = Identity.generate();
    const acl = aclWith([{ effect: "allow", principal: "group:family", verb: "send", resource: "*" }, { effect: "allow", principal: `group:${other.deviceId}/family`, verb: "read", resource: "*" }]);
    acl.acceptGroup(signGroup(other, "family", [stranger], 1));
    should(acl.authorize(stranger, "send", "msg/x")).be.false(); // not in *our* family
    should(acl.authorize(stranger, "read", "db/x")).be.true();
  });

  it("compiles each resource pattern to tests that agree with resourceMatches, on 100,000 random patterns and resources", () => {
    let seed = 11;
    const random = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed % n);
    const pick = <T>(from: T[]): T => from[random(from.length)];
    const levels = (from: string[]): string => Array.from({ length: 1 + random(4) }, () => pick(from)).join("/");
    let covered = 0;
    for (let i = 0; i < 100_000; i++) {
      const pattern = pick(["*", "db/*", "mesh", "db/a", `msg/${levels(["a", "b", "ab", "+", "#"])}`, `stream/${levels(["a", "b", "+", "#"])}`]);
      const kind = pick(["msg", "stream", "db"]);
      const topic = levels(["a", "b", "ab", "ba", ""]);
      const resource = `${kind}/${topic}`;
      const expected = resourceMatches(pattern, resource);
      const compiled = compileResource(pattern);
      if (compiled.covers(resource) !== expected) should.fail(compiled.covers(resource), expected, `${pattern} covers ${resource}`);
      if (kind !== "db") {
        const byTopic = (compiled.topicKind === kind || compiled.topicKind === "*") && compiled.coversTopic(topic);
        if (byTopic !== expected) should.fail(byTopic, expected, `${pattern} covers the ${kind} topic ${topic}`);
      }
      if (expected) covered++;
    }
    should(covered).be.within(5_000, 95_000);
  });

  it("decides a topic given apart from its kind as it decides the joined resource, with few rules naming the device and many, and for a revoked key", () => {
    let seed = 5;
    const random = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed % n);
    const pick = <T>(from: T[]): T => from[random(from.length)];
    const topics = ["door", "door/front", "door/front/lock", "room/1", "room/2/temp", "a"];
    for (let policy = 0; policy < 200; policy++) {
      const rules = Array.from({ length: 1 + random(policy % 2 ? 30 : 8) }, () => ({
        effect: pick(["allow", "allow", "deny"]),
        principal: pick(["group:family", `device:${alice}`, "known", "any", `device:${bob}`]),
        verb: pick([...VERBS, "*"]),
        resource: pick(["*", "db/*", "mesh", "msg/#", "msg/door/#", "msg/door/front", "msg/+/1", "stream/#", "stream/room/#", "msg/room/+/temp"]),
      }));
      const acl = aclWith(rules, [alice]);
      if (policy % 5 === 0) should(acl.acceptGroup(signGroup(self, REVOKED_GROUP, [alice], 1))).be.true();
      for (const peer of [alice, bob, stranger]) {
        for (const verb of VERBS) {
          for (const kind of ["msg", "stream"] as const) {
            for (const topic of topics) {
              const joined = acl.authorize(peer, verb, `${kind}/${topic}`);
              should(acl.authorizeTopic(peer, verb, kind, topic)).equal(joined, `${JSON.stringify(rules)}: ${verb} ${kind}/${topic}`);
            }
          }
        }
      }
    }
  });

  it("refuses malformed rules, naming each problem", () => {
    should(() => new Acl({ selfId: self.deviceId, rules: [{ effect: "maybe", principal: "everyone", verb: "fly", resource: "msg/#/x" }] as never })).throw(AclError, {
      message: /rule 1: effect.*rule 1: "everyone".*rule 1: verb.*rule 1: "msg\/#\/x"/,
    });
  });
});

describe("Signed groups", () => {
  const owner = Identity.generate();
  const member = Identity.generate().deviceId;

  it("verifies a group signed by its owner, with nothing but the document", () => {
    const doc = JSON.parse(JSON.stringify(signGroup(owner, "line-3", [member], 4)));
    should(verifyGroup(doc)).containEql({ name: "line-3", owner: owner.deviceId, members: [member], version: 4 });
  });

  it("rejects an altered member list, a raised version, a missing signature and a key that is not the owner's", () => {
    const doc = signGroup(owner, "line-3", [member], 1);
    const intruder = Identity.generate();
    should(() => verifyGroup({ ...doc, members: [member, intruder.deviceId].sort() })).throw(GroupError, { message: /does not match its content/ });
    should(() => verifyGroup({ ...doc, version: 2 })).throw(GroupError, { message: /does not match its content/ });
    should(() => verifyGroup({ ...doc, signature: "" })).throw(GroupError, { message: /not signed/ });
    should(() => verifyGroup({ ...doc, ownerKey: intruder.publicKeySpki.toString("base64") })).throw(GroupError, { message: /not its owner's/ });
    const forged = signGroup(intruder, "line-3", [intruder.deviceId], 9);
    should(() => verifyGroup({ ...forged, _id: doc._id, owner: owner.deviceId })).throw(GroupError);
  });

  it("keeps the highest version: an older copy replayed later is rejected and reported", () => {
    const acl = new Acl({ selfId: Identity.generate().deviceId });
    const rejected: string[] = [];
    acl.on("rejected", ({ reason }) => rejected.push(reason));
    const v1 = signGroup(owner, "line-3", [member], 1);
    const v2 = signGroup(owner, "line-3", [], 2);
    should(acl.acceptGroup(v2)).be.true();
    should(acl.acceptGroup(v1)).be.false();
    should(acl.group(owner.deviceId, "line-3")?.members).eql([]);
    should(rejected).eql(["version 1 is older than the version 2 in force"]);
  });
});
