import fc from "fast-check";
import should from "should";
import { allNodes, helper, loadFlow, useNodeRedHelper, useUserDir } from "../helpers/node-red";
import { freePort, identityPair } from "./fixtures";
import { collector, inTab, ready } from "./flow-helpers";

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);

/** A msg with random values where the nodes look (peer, topic, to, database, battery, parts, …) and anything else. */
const msgArbitrary = fc.record(
  {
    payload: fc.oneof(fc.anything(), fc.uint8Array({ maxLength: 256 }).map((bytes) => Buffer.from(bytes))),
    topic: fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom("a/+/b", "#", "", "x".repeat(300)), fc.anything()),
    peer: fc.oneof(fc.string({ maxLength: 60 }), fc.record({ id: fc.string(), name: fc.string() }), fc.anything()),
    to: fc.oneof(fc.string({ maxLength: 60 }), fc.constantFrom("B", "group:nobody", "group:"), fc.anything()),
    database: fc.oneof(fc.constantFrom("readings", "nothere", ""), fc.anything()),
    battery: fc.oneof(fc.integer({ min: -10, max: 200 }), fc.anything()),
    power: fc.oneof(fc.constantFrom("low", "ok", "mains"), fc.anything()),
    mode: fc.anything(),
    ttl: fc.anything(),
    priority: fc.anything(),
    parts: fc.oneof(fc.record({ id: fc.string(), index: fc.integer(), count: fc.option(fc.integer()) }), fc.anything()),
  },
  // Messages in a flow are plain objects (Node-RED itself calls msg.hasOwnProperty), never null-prototype ones.
  { requiredKeys: [], noNullPrototype: true },
);

/**
 * Every node with an input gets random msgs (fast-check): each one must end in a send or in done(err)
 * (what a Catch node hears), never an exception thrown out of the node, and the nodes keep working.
 */
describe("fuzzing every node's input msg (fast-check)", function () {
  this.timeout(180_000);
  useNodeRedHelper();
  useUserDir();

  it(`takes ${RUNS} random msgs on each of peer-send, mesh-sync, acl-check and peer-discover, answering each by a send or an error`, async () => {
    const bPort = await freePort();
    const pair = identityPair({ bPort });
    const [idA, idB] = pair.nodes(`127.0.0.1:${bPort}`);
    Object.assign(idA, { databases: "readings" });
    await loadFlow(
      allNodes,
      inTab([
        idA,
        idB,
        { id: "send", type: "peer-send", identity: "idA", peer: "", topic: "", timeout: 2, wires: [["out"]] },
        { id: "sync", type: "mesh-sync", identity: "idA", databases: "readings", interval: 0, wires: [["out"], ["out"]] },
        { id: "gate", type: "acl-check", identity: "idA", property: "peer.id", mode: "group", group: "family", wires: [["out"], ["out"]] },
        { id: "discover", type: "peer-discover", identity: "idA", wires: [["out"]] },
        { id: "receive", type: "peer-receive", identity: "idB", topic: "#", wires: [["out"]] },
        { id: "out", type: "helper" },
      ]),
      pair.credentials,
    );
    await ready("idA", "idB");
    const targets = ["send", "sync", "gate", "discover"] as const;
    const errors = Object.fromEntries(targets.map((id) => [id, 0])) as Record<(typeof targets)[number], number>;
    const thrown: string[] = [];
    for (const id of targets) {
      const node = helper.getNode(id) as unknown as { receive(msg: object): void; on(event: string, listener: (call: unknown) => void): void };
      node.on("call:error", () => errors[id]++);
    }
    const onUncaught = (err: Error): void => void thrown.push(err.stack ?? err.message);
    process.on("uncaughtException", onUncaught);
    process.on("unhandledRejection", onUncaught as (reason: unknown) => void);
    try {
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...targets), msgArbitrary, async (id, msg) => {
          (helper.getNode(id) as unknown as { receive(msg: object): void }).receive(msg);
          await new Promise((resolve) => setImmediate(resolve));
        }),
        { numRuns: RUNS * targets.length, seed: Number(process.env.FUZZ_SEED ?? 20261125) },
      );
      // Sends time out after 2 s at most; let the last ones finish.
      await new Promise((resolve) => setTimeout(resolve, 2_500));
    } finally {
      process.off("uncaughtException", onUncaught);
      process.off("unhandledRejection", onUncaught as (reason: unknown) => void);
    }
    console.log(`      ${RUNS * targets.length} msgs; errors reported to Catch: ${targets.map((id) => `${id} ${errors[id]}`).join(", ")}`);
    should(thrown).eql([]);

    // Still working: a well-formed msg goes through peer-send to B's flow.
    const out = collector("out");
    (helper.getNode("send") as unknown as { receive(msg: object): void }).receive({ peer: "B", topic: "after/fuzzing", payload: "still here" });
    for (;;) {
      const [msg] = await out.next();
      if (msg.topic === "after/fuzzing" && msg.payload === "still here") break;
    }
  });
});
