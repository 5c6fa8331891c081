import type { Node, NodeMessage } from "node-red";
import { Identity } from "../lib";
import { freePort } from "../test/nodes/fixtures";
import type { IdentityConfigNode } from "../nodes/shared/identity-node";
import { onInput, startEmbeddedNodeRed, until } from "./embedded-node-red";
import type { Broker } from "./mosquitto";
import { median, percentile } from "./stats";
import { tlsOneWay } from "./tls-latency";

export interface MessageFigures {
  rate: number;
  p50: number;
  p99: number;
}

type Probe = NodeMessage & { payload: { t: number; seq: number } };


/**
 * Sends `count` messages through `entry`, keeping `window` in flight, and times each from entry to sink.
 * The same driver runs for both paths, so the comparison is the path and nothing else.
 */
function drive(entry: Node, sink: Node, topic: string, count: number, window: number): Promise<MessageFigures> {
  return new Promise((resolve) => {
    const latencies: number[] = [];
    let sent = 0;
    const started = performance.now();
    const sendOne = (): void => {
      entry.receive({ topic, payload: { t: performance.now(), seq: sent++ } } as NodeMessage);
    };
    const detach = onInput(sink, (msg: Probe): void => {
      latencies.push(performance.now() - msg.payload.t);
      if (sent < count) sendOne();
      if (latencies.length === count) {
        detach();
        const seconds = (performance.now() - started) / 1000;
        resolve({ rate: count / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99) });
      }
    });
    for (let i = 0; i < Math.min(window, count); i++) sendOne();
  });
}

/**
 * peer-send → peer-receive and mqtt out → mosquitto (TLS) → mqtt in, both QoS-1-like, and the Node-RED
 * floor (link out → link in: what Node-RED itself costs, no network), in one Node-RED runtime.
 */
export async function messagesInNodeRed(broker: Broker, options: { count: number; window: number; latencyCount: number; rounds: number }) {
  const a = Identity.generate();
  const b = Identity.generate();
  const bPort = await freePort();
  const red = await startEmbeddedNodeRed(
      [
        { id: "tab", type: "tab" },
        { id: "idA", type: "identity-config", port: 0, peers: [{ id: b.deviceId, name: "B", address: `127.0.0.1:${bPort}` }] },
        { id: "idB", type: "identity-config", port: bPort, peers: [{ id: a.deviceId, name: "A" }] },
        { id: "peerOut", type: "peer-send", z: "tab", identity: "idA", peer: "B", timeout: 30, wires: [[]] },
        { id: "peerIn", type: "peer-receive", z: "tab", identity: "idB", topic: "bench/#", wires: [["peerSink"]] },
        { id: "peerSink", type: "junction", z: "tab", wires: [[]] },
        { id: "mqttTls", type: "tls-config", cert: "", key: "", ca: "", certname: "", keyname: "", caname: "", servername: "", alpnprotocol: "", verifyservercert: false },
        { id: "mqttBroker", type: "mqtt-broker", broker: "127.0.0.1", port: String(broker.port), usetls: true, tls: "mqttTls", protocolVersion: "4", keepalive: "60", cleansession: true, autoConnect: true },
        { id: "mqttOut", type: "mqtt out", z: "tab", broker: "mqttBroker", topic: "", qos: "1", retain: "false", wires: [] },
        { id: "mqttIn", type: "mqtt in", z: "tab", broker: "mqttBroker", topic: "bench/#", qos: "1", datatype: "json", wires: [["mqttSink"]] },
        { id: "mqttSink", type: "junction", z: "tab", wires: [[]] },
        // The Node-RED floor: the same entry and sink joined by link out → link in, no network at all.
        // (x and y make them flow nodes: without, Node-RED takes them for config nodes, and these two name each other.)
        { id: "linkOut", type: "link out", z: "tab", mode: "link", links: ["linkIn"], x: 100, y: 100, wires: [] },
        { id: "linkIn", type: "link in", z: "tab", links: ["linkOut"], x: 300, y: 100, wires: [["linkSink"]] },
        { id: "linkSink", type: "junction", z: "tab", x: 500, y: 100, wires: [[]] },
      ],
      {
        idA: { privateKey: a.privateKeyPem, certificate: a.certificatePem },
        idB: { privateKey: b.privateKeyPem, certificate: b.certificatePem },
      },
  );
  const helper = red;
  try {
    await Promise.all(["idA", "idB"].map((id) => (helper.getNode(id) as unknown as IdentityConfigNode).ready));
    await until(() => (helper.getNode("mqttBroker") as unknown as { connected: boolean }).connected, "the MQTT broker connection");
    const ours = { entry: helper.getNode("peerOut"), sink: helper.getNode("peerSink") };
    const mqtt = { entry: helper.getNode("mqttOut"), sink: helper.getNode("mqttSink") };
    const floor = { entry: helper.getNode("linkOut"), sink: helper.getNode("linkSink") };
    // Warm up the paths (connections, subscriptions, JIT) before measuring.
    for (const path of [ours, mqtt, floor]) await drive(path.entry, path.sink, "bench/warm", 3000, 8);
    // What a bare TLS socket takes one way, in the same rounds: with the floor's p50, the least any TLS path
    // through this runtime can take, which says whether a p50 target against MQTT is within reach at all.
    const tls = await tlsOneWay();
    // Rounds alternate the paths so that drift on this shared machine hits each; medians are reported.
    const rounds: Record<"ours" | "mqtt" | "floor", MessageFigures[]> = { ours: [], mqtt: [], floor: [] };
    const tlsP50: number[] = [];
    try {
      await tls.measure(1000);
      for (let round = 0; round < options.rounds; round++) {
        for (const [key, path] of [["ours", ours], ["mqtt", mqtt], ["floor", floor]] as const) {
          const latency = await drive(path.entry, path.sink, "bench/latency", options.latencyCount, 1);
          const throughput = await drive(path.entry, path.sink, "bench/rate", options.count, options.window);
          rounds[key].push({ rate: throughput.rate, p50: latency.p50, p99: latency.p99 });
        }
        tlsP50.push(percentile(await tls.measure(options.latencyCount), 50));
      }
    } finally {
      await tls.close();
    }
    const summary = (list: MessageFigures[]): MessageFigures => ({
      rate: median(list.map((f) => f.rate)),
      p50: median(list.map((f) => f.p50)),
      p99: median(list.map((f) => f.p99)),
    });
    const figures = { ours: summary(rounds.ours), mqtt: summary(rounds.mqtt), floor: summary(rounds.floor), tlsOneWayP50: median(tlsP50) };
    return figures;
  } finally {
    await red.stop();
  }
}
