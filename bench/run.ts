import fs from "node:fs";
import path from "node:path";
import { freePort } from "../test/helpers/ports";
import { aclCost } from "./acl-cost";
import { bleThroughput } from "./ble-throughput";
import { discoveryTimes } from "./discovery-in-netns";
import { meshBytes } from "./mesh-bytes";
import { meshLatency, replicationRate } from "./replication";
import { messagesInNodeRed } from "./messages-in-node-red";
import { mosquittoAvailable, startMosquitto } from "./mosquitto";
import { BenchResult, result } from "./stats";
import { firstMessage, streamThroughput } from "./streams-and-handshakes";
import { torVsDirect } from "./tor";

/**
 * npm run bench: each figure of ours beside a baseline measured in the same run on this machine, because
 * absolute numbers drift on a shared machine; the ratio is what to compare between runs.
 */
async function main(): Promise<void> {
  const results: BenchResult[] = [];
  const started = Date.now();

  if (mosquittoAvailable()) {
    const broker = await startMosquitto(await freePort());
    try {
      const figures = await messagesInNodeRed(broker, { count: 10000, window: 32, latencyCount: 2000, rounds: 5 });
      results.push(result("msg-rate-vs-mqtt-tls", figures.ours.rate, figures.mqtt.rate, "msg/s", "peer-send→peer-receive vs mqtt out→mosquitto(TLS)→mqtt in, QoS 1, 32 in flight; median of 5 rounds"));
      results.push(result("msg-p50-vs-mqtt-tls", figures.ours.p50, figures.mqtt.p50, "ms", "one message at a time, median of 5 rounds; lower is better"));
      results.push(result("msg-p99-vs-mqtt-tls", figures.ours.p99, figures.mqtt.p99, "ms", "one message at a time, median of 5 rounds; lower is better"));
    } finally {
      await broker.stop();
    }
  } else {
    console.warn("mosquitto is not installed (apt-get install mosquitto): the MQTT comparison is skipped");
  }

  const stream = await streamThroughput(512 * 1024 * 1024);
  results.push(result("stream-vs-raw-tls", stream.ours, stream.raw, "MB/s", "512 MiB, one stream vs one bare TLS 1.3 socket"));
  const first = await firstMessage(30);
  results.push(result("first-msg-vs-raw-tls", first.ours, first.raw, "ms", "median of 30: new peer send→ack vs bare mutual-TLS handshake; lower is better"));

  const acl = await aclCost(10_000, 5);
  results.push(result("acl-msg-rate-vs-off", acl.withAcl, acl.without, "msg/s", "1,000 rules and 10 groups of 100 keys checked at both ends vs no ACL, a new topic per message (no cached decision), 32 in flight, median of 5; target ≥ 0.9"));

  const replication = await replicationRate(10_000, 3);
  results.push(result("replication-vs-pouchdb-http", replication.ours, replication.baseline, "docs/s", "10,000 docs of ~200 bytes pushed device→device (mutual TLS, HTTP/2, ACL, LevelDB) vs PouchDB→pouchdb-server (LevelDB) over plain HTTP, median of 3; target ≥ 1.0"));
  const latency = await meshLatency(10);
  results.push(result("mesh-1-hop-vs-target", latency.oneHopMs, 1000, "ms", "mesh message send → delivered to the neighbour's flow, syncing on change, median of 10; target < 1 s"));
  results.push(result("mesh-2-relays-vs-target", latency.twoRelaysMs, 1000, "ms", "the same across 2 relays (A→B→C→D); target < 1 s"));
  const bytes = await meshBytes();
  results.push(result("mesh-directed-vs-flood-bytes", bytes.directed, bytes.flood, "bytes", `one 4 KB message on a 30-device grid, mean of 5 sender/recipient pairs (2–9 hops), idle rounds subtracted; copies stored ${bytes.directedCopies} vs ${bytes.floodCopies}; target ≤ 0.2`));

  const ble = await bleThroughput({ mtu: 247, bytesPerSecond: 100_000, bytes: 2 * 1024 * 1024 });
  results.push(result("ble-stream-vs-link-rate", ble.ours, ble.link, "kB/s", "2 MiB stream over the simulated BLE radio (ATT MTU 247, 100 kB/s each way) through noble, bleno, the GATT pipe, TLS and HTTP/2, vs the radio's rate; target ≥ 0.7"));
  const ble4 = await bleThroughput({ mtu: 23, bytesPerSecond: 20_000, bytes: 256 * 1024 });
  results.push(result("ble-stream-vs-link-rate-mtu23", ble4.ours, ble4.link, "kB/s", "256 KiB the same way at BLE 4.0's default ATT MTU of 23 and 20 kB/s; target ≥ 0.7"));

  const tor = await torVsDirect({ rounds: 5, count: 2000 });
  if (tor) {
    results.push(result("tor-first-msg-vs-direct", tor.firstMessage.tor, tor.firstMessage.direct, "ms", "new sender (tor bootstrapped, no circuit yet) → first ack through an onion service on a private Tor network on 127.0.0.1, vs a new sender over direct mutual TLS on loopback, median of 5; lower is better; real relays add their round trips"))
    results.push(result("tor-msg-rate-vs-direct", tor.rate.tor, tor.rate.direct, "msg/s", "2,000 messages, 32 in flight, warm connection, through the onion service vs direct"));
  }

  const discovery = await discoveryTimes(5);
  if (discovery) {
    results.push(result("mdns-found-vs-announce", discovery.foundMs, discovery.announceIntervalMs, "ms", "device started → found at a peer over a namespace bridge, median of 10, beside the announce interval; target < 1000 ms"));
    results.push(result("mdns-crash-lost-vs-expiry", discovery.lostAfterCrashMs, discovery.expireMs, "ms", "SIGKILL → lost at a peer, median of 5, beside the expiry; target < 5000 ms"));
    results.push(result("mdns-stop-lost-vs-announce", discovery.lostAfterStopMs, discovery.announceIntervalMs, "ms", "clean stop (goodbye) → lost at a peer, median of 5, beside the announce interval"));
  }

  console.log("\n" + "benchmark".padEnd(28) + "ours".padStart(12) + "baseline".padStart(12) + "  unit   ratio");
  for (const row of results) {
    console.log(row.name.padEnd(28) + String(row.ours).padStart(12) + String(row.baseline).padStart(12) + `  ${row.unit.padEnd(6)} ${row.ratio}`);
  }
  const file = path.resolve(__dirname, "..", "..", "bench", "results.json");
  fs.writeFileSync(file, JSON.stringify(results, null, 2) + "\n");
  console.log(`\nwrote ${path.relative(process.cwd(), file)} in ${Math.round((Date.now() - started) / 1000)} s`);
}

// Ctrl+C goes through process.exit so that the "exit" handlers stop the broker.
process.once("SIGINT", () => process.exit(130));

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
