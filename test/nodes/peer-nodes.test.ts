import should from "should";
import { Readable } from "node:stream";
import type { Node } from "node-red";
import { Identity } from "../../lib";
import type { IdentityConfigNode } from "../../nodes/shared/identity-node";
import { byteSource } from "../helpers/devices";
import { allNodes, helper, loadFlow, runtimeHooks, useNodeRedHelper, withHooks } from "../helpers/node-red";
import { freePort, identityPair } from "./fixtures";
import { collector, inTab, Msg, ready, statuses, statusWhere } from "./flow-helpers";
import { heldFor, redeliveryMetrics } from "../../nodes/shared/redelivery";


describe("peer-send and peer-receive nodes", () => {
  useNodeRedHelper();

  async function deploy(extra: Array<Record<string, unknown>>, receive: Record<string, unknown> = {}, nodes: unknown[] = allNodes) {
    const bPort = await freePort();
    const pair = identityPair({ bPort });
    await loadFlow(
      nodes,
      inTab([
        ...pair.nodes(`127.0.0.1:${bPort}`),
        { id: "send", type: "peer-send", identity: "idA", peer: "B", timeout: 5, partsAsStream: true, wires: [["acks"]] },
        { id: "recv", type: "peer-receive", identity: "idB", topic: "sensors/#", streamOutput: "chunks", chunkKb: 64, wires: [["out"]], ...receive },
        { id: "acks", type: "helper" },
        { id: "out", type: "helper" },
        { id: "catcher", type: "catch", scope: null, uncaught: false, wires: [["caught"]] },
        { id: "caught", type: "helper" },
        ...extra,
      ]),
      pair.credentials,
    );
    await ready("idA", "idB");
    return { pair, acks: collector("acks"), out: collector("out"), caught: collector("caught") };
  }

  it("delivers strings, JSON and Buffers with the sender's verified id, then outputs the ack", async () => {
    const { pair, acks, out } = await deploy([]);
    const send = helper.getNode("send");
    send.receive({ topic: "sensors/press-7/temperature", payload: { celsius: 81.5 } } as Msg);
    send.receive({ topic: "sensors/press-7/state", payload: "running" } as Msg);
    send.receive({ topic: "sensors/press-7/raw", payload: Buffer.from([1, 2, 3]) } as Msg);
    const received = await out.next(3);
    const byTopic = Object.fromEntries(received.map((msg) => [msg.topic, msg]));
    should(byTopic["sensors/press-7/temperature"].payload).eql({ celsius: 81.5 });
    should(byTopic["sensors/press-7/state"].payload).equal("running");
    should(Buffer.isBuffer(byTopic["sensors/press-7/raw"].payload)).be.true();
    should(byTopic["sensors/press-7/raw"].peer).eql({ id: pair.a.deviceId, name: "A" });
    const acked = await acks.next(3);
    should(acked.map((msg) => (msg.payload as { receivers: number }).receivers)).eql([1, 1, 1]);
  });

  it("lets a flow answer the sender through msg.peer", async () => {
    const { out } = await deploy([
      { id: "reply", type: "peer-send", identity: "idB", timeout: 5, wires: [[]] },
      { id: "replies", type: "peer-receive", identity: "idA", topic: "answers", wires: [["answered"]] },
      { id: "answered", type: "helper" },
    ]);
    const answered = collector("answered");
    // B knows A by key but not by address: give it one so it can answer.
    const idB = helper.getNode("idB") as unknown as IdentityConfigNode;
    const idA = helper.getNode("idA") as unknown as IdentityConfigNode;
    const a = idB.device!.peers.get(idA.device!.id)!;
    a.address = `127.0.0.1:${idA.device!.port}`;
    helper.getNode("send").receive({ topic: "sensors/ping", payload: "ping" } as Msg);
    const [question] = await out.next();
    helper.getNode("reply").receive({ ...question, topic: "answers", payload: "pong" });
    const [answer] = await answered.next();
    should(answer.payload).equal("pong");
    should((answer.peer as { id: string }).id).equal(idB.device!.id);
  });

  it("asks and answers: peer send with wait for reply outputs what a peer reply node on the other side was given", async () => {
    const { out, caught } = await deploy([
      { id: "ask", type: "peer-send", identity: "idA", peer: "B", timeout: 5, waitReply: true, replyTimeout: 5, wires: [["answers"]] },
      { id: "answers", type: "helper" },
      // The receiving flow: whatever works out the answer (the test, here), then a peer reply node.
      { id: "recv-req", type: "peer-receive", identity: "idB", topic: "gateway/history", wires: [["work"]] },
      { id: "work", type: "helper" },
      { id: "answer", type: "peer-reply", wires: [] },
    ]);
    const answers = collector("answers");
    const work = collector("work");
    helper.getNode("ask").receive({ topic: "gateway/history", payload: { hours: 1 }, keep: "this" } as Msg);
    const [request] = await work.next();
    helper.getNode("answer").receive({ ...request, payload: { readings: [20.5, 21], for: `${(request.payload as { hours: number }).hours}h` } });
    const [answered] = await answers.next();
    should(answered.payload).eql({ readings: [20.5, 21], for: "1h" });
    should(answered.ack).match({ topic: "gateway/history", receivers: 1 });
    should(answered.keep).equal("this");
    should(typeof answered.messageId).equal("string");
    should(out.queue).have.length(0); // "sensors/#" is another receiver's topic
    should(caught.queue).have.length(0);
    should(await statusWhere("ask", (status) => status.fill === "green")).match({ text: "peer-send.status.replied" });
  });

  it("a request nobody answers in time reaches the Catch node as TIMEOUT; a msg without a request handle at peer reply as NO_REQUEST", async () => {
    const { caught } = await deploy([
      { id: "ask", type: "peer-send", identity: "idA", peer: "B", timeout: 5, waitReply: true, replyTimeout: 0.3, wires: [[]] },
      { id: "recv-req", type: "peer-receive", identity: "idB", topic: "slow", wires: [["hold"]] },
      { id: "hold", type: "helper" },
      { id: "answer", type: "peer-reply", wires: [] },
    ]);
    const held = collector("hold");
    helper.getNode("ask").receive({ topic: "slow", payload: 1 } as Msg);
    const [request] = await held.next();
    should(request._peerReply).be.a.String();
    const [timedOut] = await caught.next();
    should(timedOut.error).match({ code: "TIMEOUT", message: /did not reply within 300 ms/, source: { id: "ask" } });
    helper.getNode("answer").receive({ ...request, payload: "too late" });
    const [late] = await caught.next();
    should(late.error).match({ code: "NO_REQUEST", message: /peer-reply.errors.gone/, source: { id: "answer" } });
    helper.getNode("answer").receive({ payload: "to whom?" } as Msg);
    const [orphan] = await caught.next();
    should(orphan.error).match({ code: "NO_REQUEST", message: /peer-reply.errors.no-handle/ });
  });

  it("passes failures to a Catch node with a code, and shows them in the status", async () => {
    const { caught } = await deploy([]);
    const seen = statuses("send");
    const send = helper.getNode("send");
    send.receive({ topic: "nobody/listens/here", payload: 1 } as Msg);
    const [noReceiver] = await caught.next();
    should(noReceiver.error).match({ code: "NO_RECEIVER", message: /receives messages on "nobody\/listens\/here"/, source: { id: "send" } });
    send.receive({ topic: "sensors/x", payload: () => 1 } as unknown as Msg);
    const [unsendable] = await caught.next();
    should((unsendable.error as { message: string }).message).match(/cannot be sent/);
    should(seen).containDeep([{ fill: "red", text: "no receiver" }]);
  });

  it("keeps the wire id in msg.messageId, so a msg retried after a failure reaches the receiving flow once", async () => {
    const { acks, out, caught } = await deploy([]);
    const send = helper.getNode("send");
    send.receive({ topic: "sensors/door", payload: "open" } as Msg);
    const [first] = await acks.next();
    should(first.messageId).be.a.String();
    should((first.payload as { id: string }).id).equal(first.messageId);
    // The same msg again (as a Catch → delay → peer-send loop resends it): acked, not delivered twice.
    send.receive({ topic: "sensors/door", payload: "open", messageId: first.messageId } as Msg);
    const [again] = await acks.next();
    should(again.payload).containEql({ id: first.messageId, duplicate: true });
    const [delivered] = await out.next();
    should(delivered.messageId).equal(first.messageId);
    await new Promise((resolve) => setTimeout(resolve, 200));
    should(out.queue).have.length(0);
    send.receive({ topic: "sensors/door", payload: "open", messageId: "has spaces" } as Msg);
    should(((await caught.next())[0].error as { message: string }).message).match(/msg.messageId/);
  });

  it("a msg a deploy dropped on its way to the next node is handed over again, once: to the restarted node, or to the next peer receive after a full deploy", async () => {
    // The node test helper's RED has no hooks; Node-RED's own runtime gives them to every node.
    const hooks = runtimeHooks();
    const flowNodes = withHooks(allNodes, hooks);
    const redelivered = (): number => Number(/peer_mesh_redelivered_total\{[^}]*\} (\d+)/.exec(redeliveryMetrics())![1]);
    const before = redelivered();
    const { pair, acks, out } = await deploy([], {}, flowNodes);
    const send = helper.getNode("send");
    send.receive({ topic: "sensors/ok", payload: 1 } as Msg);
    should((await out.next())[0].topic).equal("sensors/ok");
    should((await acks.next())[0].payload).containEql({ receivers: 1 });
    // As a deploy does, between node.send and Node-RED's delivery a turn later: the next node stops.
    const stopNextNode = (topic: string) => (event: { destination: { id: string; node?: Node }; msg: Msg }) => {
      if (event.destination.id === "out" && event.msg.topic === topic) void event.destination.node?.close(false);
    };
    hooks.add("preDeliver.peer-mesh-test", stopNextNode("sensors/restart"));
    try {
      send.receive({ topic: "sensors/restart", payload: 2, messageId: "restart-1" } as Msg);
      should((await acks.next())[0].payload).containEql({ id: "restart-1", receivers: 1 });
    } finally {
      hooks.remove("*.peer-mesh-test");
    }
    // The stopped node comes back (a "nodes" deploy restarts it): the msg reaches it, once.
    const restarted = collector("out");
    should((await restarted.next())[0]).containEql({ messageId: "restart-1", payload: 2 });

    // A full deploy: the msg is dropped while everything stops, and the next flow's peer receive takes it.
    hooks.add("preDeliver.peer-mesh-test", (event: { destination: { id: string }; msg: Msg }) => {
      if (event.destination.id === "out" && event.msg.topic === "sensors/full") void helper.getNode("recv").close(false).then(() => helper.getNode("out").close(false));
    });
    try {
      send.receive({ topic: "sensors/full", payload: 3, messageId: "full-1" } as Msg);
      should((await acks.next())[0].payload).containEql({ id: "full-1" });
      // Held for the next flow's peer receive once Node-RED's delivery turn has shown the drop.
      const deadline = Date.now() + 5_000;
      while (heldFor(pair.b.deviceId) === 0 && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
      should(heldFor(pair.b.deviceId)).equal(1);
    } finally {
      hooks.remove("*.peer-mesh-test");
    }
    await helper.unload();
    await loadFlow(flowNodes, inTab([...pair.nodes("127.0.0.1:1"), { id: "recv", type: "peer-receive", identity: "idB", topic: "sensors/#", wires: [["out"]] }, { id: "out", type: "helper" }]), pair.credentials);
    const afterDeploy = collector("out");
    should((await afterDeploy.next())[0]).containEql({ messageId: "full-1", payload: 3 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    should(afterDeploy.queue).have.length(0);
    should(redelivered() - before).equal(2); // counted for the metrics (peer_mesh_redelivered_total)
    await helper.unload();
    await new Promise((resolve) => setImmediate(resolve));
    should(hooks.has("preDeliver.peer-mesh-receipts")).be.false("the hooks outlived the last peer receive");
  });

  it("keeps its Node-RED hooks in only while a msg is on its way (they run on every msg of every flow), and still sees a drop once they are back", async () => {
    const hooks = runtimeHooks();
    const { acks, out } = await deploy([], {}, withHooks(allNodes, hooks));
    const send = helper.getNode("send");
    const hooked = (): boolean => hooks.has("preDeliver.peer-mesh-receipts");
    const until = async (condition: () => boolean, what: string): Promise<void> => {
      const deadline = Date.now() + 5_000;
      while (!condition()) {
        if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    };
    send.receive({ topic: "sensors/one", payload: 1 } as Msg);
    should((await out.next())[0].payload).equal(1);
    await acks.next();
    await until(() => !hooked(), "the hooks stayed in with nothing on its way and peer receive still deployed");
    // Back for the next msg, in time to see a deploy stop the next node between send and delivery.
    hooks.add("preDeliver.peer-mesh-test", (event: { destination: { id: string; node?: Node }; msg: Msg }) => {
      if (event.destination.id === "out" && event.msg.topic === "sensors/two") void event.destination.node?.close(false);
    });
    try {
      send.receive({ topic: "sensors/two", payload: 2, messageId: "two-1" } as Msg);
      await acks.next();
    } finally {
      hooks.remove("*.peer-mesh-test");
    }
    const restarted = collector("out");
    should((await restarted.next())[0]).containEql({ messageId: "two-1", payload: 2 });
    await until(() => !hooked(), "the hooks stayed in after the redelivery");
  });

  it("a peer send with nothing wired to its output hands Node-RED no ack msg to route", async () => {
    await deploy([
      { id: "unwired", type: "peer-send", identity: "idA", peer: "B", timeout: 5, wires: [[]] },
      { id: "completed", type: "complete", scope: ["unwired", "send"], uncaught: false, wires: [["completions"]] },
      { id: "completions", type: "helper" },
    ]);
    const completions = collector("completions");
    const sends: string[] = [];
    for (const id of ["send", "unwired"]) {
      const node = helper.getNode(id) as unknown as { send(...args: unknown[]): void };
      const send = node.send;
      node.send = (...args) => {
        sends.push(id);
        send.apply(node, args);
      };
    }
    helper.getNode("unwired").receive({ topic: "sensors/unwired", payload: 1 } as Msg);
    helper.getNode("send").receive({ topic: "sensors/wired", payload: 2 } as Msg);
    // done() comes after the ack's send in both: once both completed, every send they made is counted.
    should((await completions.next(2)).map((msg) => msg.topic).sort()).eql(["sensors/unwired", "sensors/wired"]);
    await new Promise((resolve) => setImmediate(resolve));
    should(sends).eql(["send"]);
  });

  it("refuses to send to a peer that is not configured or not known", async () => {
    await deploy([{ id: "loose", type: "peer-send", identity: "idA", timeout: 5, wires: [[]] }]);
    const caught = collector("caught");
    helper.getNode("loose").receive({ topic: "sensors/x", payload: 1 } as Msg);
    should((await caught.next())[0].error).match({ code: "UNKNOWN_PEER", message: /no peer/ });
    helper.getNode("loose").receive({ topic: "sensors/x", payload: 1, peer: "stranger" } as Msg);
    should((await caught.next())[0].error).match({ message: /no known peer is called "stranger"/ });
  });

  it("outputs a stream as chunk msgs with msg.parts that rebuild it exactly", async () => {
    const { out, acks } = await deploy([]);
    const total = 1_000_000;
    const source = byteSource(total, 10_000, (i) => i);
    helper.getNode("send").receive({ topic: "sensors/camera", payload: source } as Msg);
    const expectedChunks = Math.ceil(total / 65536);
    const chunks = await out.next(expectedChunks);
    const parts = chunks.map((msg) => msg.parts as { id: string; index: number; count?: number; type: string });
    should(parts.map((p) => p.index)).eql(Array.from({ length: expectedChunks }, (_, i) => i));
    should(parts.filter((p) => p.count !== undefined)).have.length(1);
    should(parts[expectedChunks - 1].count).equal(expectedChunks);
    should(new Set(parts.map((p) => p.id)).size).equal(1);
    const whole = Buffer.concat(chunks.map((msg) => msg.payload as Buffer));
    const expected = Buffer.concat(await Readable.from(byteSource(total, 10_000, (i) => i)).toArray());
    should(whole.equals(expected)).be.true();
    should((await acks.next())[0].payload).match({ bytes: total, receivers: 1 });
  });

  it("turns a split-style msg.parts sequence into one stream, even out of order, and outputs one Buffer", async () => {
    const { out, acks } = await deploy([], { streamOutput: "buffer" });
    const send = helper.getNode("send");
    const pieces = ["alpha-", "beta-", "gamma"];
    const order = [1, 0, 2];
    for (const index of order) {
      send.receive({ topic: "sensors/log", payload: pieces[index], parts: { id: "seq-1", index, count: pieces.length, type: "string" } } as unknown as Msg);
    }
    const [whole] = await out.next();
    should(Buffer.isBuffer(whole.payload)).be.true();
    should(String(whole.payload)).equal("alpha-beta-gamma");
    const acked = await acks.next();
    should(acked).have.length(1);
    should(acked[0].payload).match({ bytes: 16 });
  });

  it("fails every part of a sequence nobody receives, without opening a second stream", async () => {
    const { caught } = await deploy([]);
    const send = helper.getNode("send");
    for (let index = 0; index < 3; index++) {
      send.receive({ topic: "nobody/here", payload: Buffer.alloc(10), parts: { id: "lost", index, count: 3 } } as unknown as Msg);
    }
    const errors = await caught.next(3);
    should(errors.map((msg) => (msg.error as { message: string }).message).join("\n")).match(/receives streams on "nobody\/here"|already failed/);
    should((helper.getNode("idA") as unknown as IdentityConfigNode).device!.port).be.above(0);
  });

  it("fails a stream larger than the buffer limit in buffer mode, at both ends", async () => {
    const { caught } = await deploy([], { streamOutput: "buffer", maxBufferMb: 1 });
    helper.getNode("send").receive({ topic: "sensors/huge", payload: byteSource(3 * 1024 * 1024) } as Msg);
    const errors = await caught.next(2);
    const sources = errors.map((msg) => (msg.error as { source: { id: string } }).source.id).sort();
    should(sources).eql(["recv", "send"]);
    should(errors.map((msg) => (msg.error as { code: string }).code)).eql(["TOO_LARGE", "TOO_LARGE"]);
  });

  it("shows the listening port and a count in the receiver's status", async () => {
    const { out } = await deploy([]);
    // The test helper's RED._ returns keys; the catalog test checks the words behind them.
    const counted = statusWhere("recv", (status) => status.text === "peer-mesh.status.received");
    helper.getNode("send").receive({ topic: "sensors/a", payload: 1 } as Msg);
    await out.next();
    should(await counted).match({ fill: "green", shape: "dot" });
  });

  it("shows a red status on nodes whose identity is missing", async () => {
    await loadFlow(allNodes, inTab([{ id: "orphan", type: "peer-send", identity: "gone", wires: [[]] }]));
    const orphan = helper.getNode("orphan") as Node & { status: { lastCall?: { args: unknown[] } } };
    should(orphan.status.lastCall!.args[0]).match({ fill: "red" });
  });

  it("refuses messages from a key that identity B does not know, before they reach the flow", async () => {
    const bPort = await freePort();
    const pair = identityPair({ bPort });
    const stranger = Identity.generate();
    await loadFlow(
      allNodes,
      inTab([
        ...pair.nodes(`127.0.0.1:${bPort}`),
        { id: "idS", type: "identity-config", port: 0, peers: [{ id: pair.b.deviceId, name: "B", address: `127.0.0.1:${bPort}` }] },
        { id: "sendS", type: "peer-send", identity: "idS", peer: "B", timeout: 5, wires: [[]] },
        { id: "recv", type: "peer-receive", identity: "idB", topic: "#", wires: [["out"]] },
        { id: "out", type: "helper" },
        { id: "catcher", type: "catch", scope: null, wires: [["caught"]] },
        { id: "caught", type: "helper" },
      ]),
      { ...pair.credentials, idS: { privateKey: stranger.privateKeyPem, certificate: stranger.certificatePem } },
    );
    await ready("idB", "idS");
    const out = collector("out");
    const caught = collector("caught");
    helper.getNode("sendS").receive({ topic: "door/unlock", payload: true } as Msg);
    const [refusal] = await caught.next();
    should(refusal.error).match({ code: "REFUSED", message: new RegExp(`does not accept the key ${stranger.deviceId}`) });
    should(out.queue).have.length(0);
  });
});
