import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { freePort } from "../test/helpers/ports";
import { netnsUnavailable } from "../test/netns/harness";
import { torMissing } from "../test/helpers/tor-network";
import { aclCost } from "./acl-cost";
import { bleThroughput } from "./ble-throughput";
import { discoveryTimes, type DiscoveryTimes } from "./discovery-in-netns";
import { identityMemory } from "./identity-memory";
import { GRID_100, GRID_30, meshBytes, type MeshBytes } from "./mesh-bytes";
import { meshLatency, replicationRate } from "./replication";
import { messagesInNodeRed } from "./messages-in-node-red";
import { messagesBetweenRuntimes } from "./two-runtimes";
import { libraryMessages } from "./messages-library";
import { gatewayScale } from "./gateway-scale";
import { mosquittoAvailable, startMosquitto, type Broker } from "./mosquitto";
import { BenchResult, pairedResult, result } from "./stats";
import { coreSpeeds, coreSpread, describeCores, UNEVEN_CORES } from "./core-speeds";
import { firstMessage, knownPeerMessage, streamThroughput } from "./streams-and-handshakes";
import { torVsDirect } from "./tor";

/** Copies, rounds and time to delivery of each mode on a grid, for a result's note. */
function gridCosts(grid: MeshBytes): string {
  return `directed ${grid.directed.copies} copies, delivered in ${grid.directed.roundsToDeliver} rounds (${grid.directed.msToDeliver} ms); flood ${grid.flood.copies} copies, ${grid.flood.roundsToDeliver} rounds (${grid.flood.msToDeliver} ms); an idle round of the whole grid ${grid.idleRoundMs} ms`;
}

const needsMosquitto = (): string | undefined => (mosquittoAvailable() ? undefined : "needs mosquitto: apt-get install mosquitto");

/** Runs `use` with a mosquitto of its own on a free loopback port, stopped afterwards whatever happens. */
async function withMosquitto<T>(use: (broker: Broker) => Promise<T>): Promise<T> {
  const broker = await startMosquitto(await freePort());
  try {
    return await use(broker);
  } finally {
    await broker.stop();
  }
}

/** One benchmark: what it needs that may be missing here, and how to run it in the quick or the full set. */
interface Benchmark {
  name: string;
  /** Why it cannot run on this machine and how to fix that, or undefined when it can. */
  missing?: () => string | undefined;
  /** Left out of `--quick` (it needs more than a few seconds whatever its size). */
  fullOnly?: boolean;
  /** Run only when this flag is given (it would take the full set past 10 minutes). */
  optIn?: string;
  run(quick: boolean): Promise<BenchResult[]>;
}

const BENCHMARKS: Benchmark[] = [
  {
    name: "messages in Node-RED vs MQTT through mosquitto",
    missing: needsMosquitto,
    run: (quick) =>
      withMosquitto(async (broker) => {
        const rounds = quick ? 3 : 5;
        const figures = await messagesInNodeRed(broker, { count: quick ? 2_000 : 10_000, window: 32, latencyCount: quick ? 500 : 2_000, rounds });
        return [
          result("msg-rate-vs-mqtt-tls", figures.ours.rate, figures.mqtt.rate, "msg/s", `peer-send→peer-receive vs mqtt out→mosquitto(TLS)→mqtt in, QoS 1, 32 in flight; median of ${rounds} rounds`),
          result("msg-p50-vs-mqtt-tls", figures.ours.p50, figures.mqtt.p50, "ms", `one message at a time, median of ${rounds} rounds; lower is better`),
          result("msg-p99-vs-mqtt-tls", figures.ours.p99, figures.mqtt.p99, "ms", `one message at a time, median of ${rounds} rounds; lower is better`),
          result("msg-p50-floor-vs-mqtt-tls", figures.floor.p50 + figures.tlsOneWayP50, figures.mqtt.p50, "ms", `the least a TLS path through one runtime can take: the Node-RED floor's p50 (link out→link in) plus a bare mutual-TLS socket's one-way p50 in this process, one message at a time, medians of ${rounds} rounds; msg-p50's target (≤ 0.5) is out of reach wherever this is above it`),
          result("msg-rate-vs-node-red-floor", figures.ours.rate, figures.floor.rate, "msg/s", `peer-send→peer-receive vs the same entry and sink joined by link out→link in (no network: what Node-RED itself allows), 32 in flight; median of ${rounds} rounds; target ≥ 0.7`),
        ];
      }),
  },
  {
    name: "messages between two Node-RED runtimes (one a device) vs MQTT through mosquitto",
    missing: needsMosquitto,
    run: (quick) =>
      withMosquitto(async (broker) => {
        const rounds = quick ? 3 : 5;
        const { ours, mqtt, stalls } = await messagesBetweenRuntimes(broker, { count: quick ? 5_000 : 20_000, window: 32, rounds });
        const perMessage = (f: typeof ours) => `sender ${f.senderCpuUs.toFixed(1)} µs, receiver ${f.receiverCpuUs.toFixed(1)} µs, broker ${f.brokerCpuUs.toFixed(1)} µs`;
        const lost = (["ours", "mqtt"] as const).filter((key) => stalls[key].length > 0).map((key) => `${key}: ${stalls[key].length} round(s) stalled, ${stalls[key].map((s) => `${s.arrived} of ${s.count}`).join(", ")} arrived`);
        const how = `each end in a Node-RED process of its own, 32 in flight counted at the receiver, median of ${rounds} rounds${lost.length > 0 ? ` (of those that did not stall; ${lost.join("; ")})` : ""}`;
        return [
          result("msg-rate-2-runtimes-vs-mqtt", ours.rate, mqtt.rate, "msg/s", `peer-send→peer-receive vs mqtt out→mosquitto(TLS)→mqtt in, QoS 1, ${how}; target ≥ 2.0`),
          result("msg-cpu-sender-vs-mqtt", ours.senderCpuUs, mqtt.senderCpuUs, "µs", `CPU a message in the sending runtime (peer send vs mqtt out), ${how}; lower is better`),
          result("msg-cpu-receiver-vs-mqtt", ours.receiverCpuUs, mqtt.receiverCpuUs, "µs", `CPU a message in the receiving runtime (peer receive vs mqtt in), ${how}; lower is better`),
          result("msg-cpu-all-vs-mqtt", ours.senderCpuUs + ours.receiverCpuUs, mqtt.senderCpuUs + mqtt.receiverCpuUs + mqtt.brokerCpuUs, "µs", `CPU a message in all processes (ours: ${perMessage(ours)}; MQTT: ${perMessage(mqtt)}), ${how}; lower is better`),
        ];
      }),
  },
  {
    name: "messages at the library level vs framed messages on a bare TLS socket",
    async run(quick) {
      const rounds = quick ? 3 : 5;
      const library = await libraryMessages({ count: quick ? 5_000 : 20_000, window: 32, rounds });
      return [result("lib-msg-rate-vs-raw-tls", library.ours, library.raw, "msg/s", `device.send→onMessage with acks vs length-prefixed JSON frames and acks on one mutual-TLS 1.3 socket, same payloads, 32 in flight, median of ${rounds}; target ≥ 0.5`)];
    },
  },
  {
    name: "one gateway and 10, 100, 1,000 devices sending a message a second each",
    async run(quick) {
      const steps = await gatewayScale({
        steps: quick ? [10, 100] : [10, 100, 1_000],
        loadSeconds: quick ? 5 : 10,
        onStep: (step) => console.log(`    ${step.peers} peers: gateway ${step.idleRssMb.toFixed(0)} MB idle (${step.rssPerPeerKb.toFixed(0)} KB a peer), ${step.delivered}/${step.sent} messages delivered, p50 ${step.p50Ms.toFixed(2)} ms, p99 ${step.p99Ms.toFixed(1)} ms, gateway CPU ${step.cpuPercent.toFixed(1)} % of a core (${step.cpuMsPer1k.toFixed(0)} ms per 1,000 messages, streams included), ${step.streamMb.toFixed(0)} MB streamed`),
      });
      const [first, , last = steps[steps.length - 1]] = steps;
      const middle = steps[Math.max(0, steps.length - 2)];
      return [
        result("gateway-delivered-vs-sent", last.delivered, last.sent, "msgs", `${last.peers} devices, one message a second each for the load period, 10 of them also sending 1 MB streams every 2 s; target 1.0`),
        result("gateway-rss-per-idle-peer-vs-target", last.rssPerPeerKb, 100, "KB", `the gateway's RSS (own process, after a full collection) with ${last.peers} peers connected and idle, less its RSS before any, per peer; target ≤ 100 KB`),
        result("gateway-p99-vs-10-peers", last.p99Ms, first.p99Ms, "ms", `send → ack p99 with ${last.peers} peers vs with ${first.peers}`),
        result("gateway-cpu-vs-fewer-peers", last.cpuPercent, middle.cpuPercent, "%", `the gateway's share of a core with ${last.peers} peers vs ${middle.peers} (${last.peers / middle.peers}x the messages; the same 10 streams)`),
      ];
    },
  },
  {
    name: "a stream and a first message vs a bare TLS socket",
    async run(quick) {
      const mib = quick ? 64 : 512;
      const stream = await streamThroughput(mib * 1024 * 1024);
      const runs = quick ? 10 : 30;
      const first = await firstMessage(runs);
      const known = await knownPeerMessage(runs);
      return [
        result("stream-vs-raw-tls", stream.ours, stream.raw, "MB/s", `${mib} MiB, one stream vs one bare TLS 1.3 socket`),
        result("first-msg-vs-raw-tls", first.ours, first.raw, "ms", `median of ${runs}: new peer send→ack vs bare mutual-TLS handshake; lower is better`),
        result("first-msg-vs-http2-floor", first.ours, first.http2, "ms", `median of ${runs}: new peer send→ack vs one POST on a new bare HTTP/2 connection over the same mutual TLS (the floor of any HTTP/2 protocol); lower is better`),
        result("http2-floor-vs-raw-tls", first.http2, first.raw, "ms", `median of ${runs}: one POST on a new bare HTTP/2 connection vs a bare mutual-TLS handshake: how much of the first-message target HTTP/2 alone takes`),
        result("known-peer-msg-vs-raw-tls", known.ours, known.rawFull, "ms", `median of ${runs}: send→ack to a known peer whose connection was closed (two reconnects of three resume its TLS session: each ticket is offered once) vs a bare full mutual-TLS handshake, alternating; lower is better; target ≤ 1.3`),
        result("known-peer-msg-vs-raw-tls-resumed", known.ours, known.rawResumed, "ms", `median of ${runs}: the same vs a bare resumed TLS 1.3 handshake (like for like); lower is better`),
      ];
    },
  },
  {
    name: "the ACL's cost on messages",
    async run(quick) {
      const rounds = quick ? 4 : 16;
      const pairs = await aclCost(quick ? 2_000 : 5_000, rounds);
      return [pairedResult("acl-msg-rate-vs-off", pairs.map((pair) => ({ ours: pair.withAcl, baseline: pair.without })), "msg/s", `1,000 rules and 10 groups of 100 keys checked at both ends vs no ACL, a new topic per message (no cached decision), 32 in flight; the median ratio of ${rounds} rounds, each measuring both one after the other; target ≥ 0.97`)];
    },
  },
  {
    name: "replication vs PouchDB over HTTP, and mesh latency",
    async run(quick) {
      const docs = quick ? 2_000 : 10_000;
      const rounds = quick ? 1 : 3;
      const replication = await replicationRate(docs, rounds);
      const samples = quick ? 3 : 10;
      const latency = await meshLatency(samples);
      return [
        result("replication-vs-pouchdb-http", replication.ours, replication.baseline, "docs/s", `${docs.toLocaleString("en")} docs of ~200 bytes pushed device→device (mutual TLS, HTTP/2, ACL, LevelDB) vs PouchDB→pouchdb-server (LevelDB) over plain HTTP, median of ${rounds}; target ≥ 1.0`),
        result("mesh-1-hop-vs-target", latency.oneHopMs, 1000, "ms", `mesh message send → delivered to the neighbour's flow, syncing on change, median of ${samples}; target < 1 s`),
        result("mesh-2-relays-vs-target", latency.twoRelaysMs, 1000, "ms", "the same across 2 relays (A→B→C→D); target < 1 s"),
      ];
    },
  },
  {
    name: "the memory an idle identity adds to Node-RED",
    async run(quick) {
      const memory = await identityMemory(quick ? 5 : 20, quick ? 8_000 : 20_000);
      const note = `${memory.identities} identities (storage, one database, a peer-receive each) over a bare Node-RED of ${memory.bareMb.toFixed(0)} MB: ${memory.withIdentitiesMb.toFixed(0)} MB, ${memory.afterRedeploysMb.toFixed(0)} MB after 10 full redeploys; target ≤ 40 MB each`;
      return [
        result("identity-idle-rss-vs-target", memory.perIdentityMb, 40, "MB", note),
        result("identity-rss-after-redeploys", memory.afterRedeploysMb - memory.bareMb, memory.withIdentitiesMb - memory.bareMb, "MB", "what the identities hold after 10 full redeploys vs before them; 1.0 means redeploys leave nothing behind"),
      ];
    },
  },
  {
    name: "directed vs flood mesh bytes on a 30-device grid",
    fullOnly: true,
    async run() {
      const grid = await meshBytes(GRID_30);
      return [result("mesh-directed-vs-flood-bytes", grid.directed.bytes, grid.flood.bytes, "bytes", `one 4 KB message on a 30-device grid, mean of 5 sender/recipient pairs (2–9 hops), idle rounds subtracted; ${gridCosts(grid)}; target ≤ 0.2`)];
    },
  },
  {
    name: "directed vs flood mesh on a 100-device grid, and growth from 30 devices",
    fullOnly: true,
    optIn: "--mesh100",
    async run() {
      const small = await meshBytes(GRID_30);
      const large = await meshBytes(GRID_100, (line) => process.stdout.write(`    ${line}\r`));
      process.stdout.write("\n");
      return [
        result("mesh100-directed-vs-flood-bytes", large.directed.bytes, large.flood.bytes, "bytes", `one 4 KB message on a 10×10 grid, mean of 5 pairs (2–18 hops), idle rounds subtracted; ${gridCosts(large)}; target ≤ 0.2`),
        result("mesh100-vs-30-directed-bytes", large.directed.bytes, small.directed.bytes, "bytes", `directed: what a message costs on 100 devices vs on 30 (mean hops 10.6 vs 5); 30 devices: ${gridCosts(small)}`),
        result("mesh100-vs-30-flood-bytes", large.flood.bytes, small.flood.bytes, "bytes", "flood: what a message costs on 100 devices vs on 30 (a flood reaches nearly every device)"),
        result("mesh100-directed-vs-flood-ms", large.directed.msToDeliver, large.flood.msToDeliver, "ms", "time from send to delivery on the 10×10 grid in lock-step sync rounds, all devices in one process"),
      ];
    },
  },
  {
    name: "streams over the simulated BLE radio",
    async run(quick) {
      const ble = await bleThroughput({ mtu: 247, bytesPerSecond: 100_000, bytes: (quick ? 512 : 2048) * 1024 });
      const ble4 = await bleThroughput({ mtu: 23, bytesPerSecond: 20_000, bytes: (quick ? 64 : 256) * 1024 });
      return [
        result("ble-stream-vs-link-rate", ble.ours, ble.link, "kB/s", `${quick ? "512 KiB" : "2 MiB"} stream over the simulated BLE radio (ATT MTU 247, 100 kB/s each way) through noble, bleno, the GATT pipe, TLS and HTTP/2, vs the radio's rate; target ≥ 0.7`),
        result("ble-stream-vs-link-rate-mtu23", ble4.ours, ble4.link, "kB/s", `${quick ? "64" : "256"} KiB the same way at BLE 4.0's default ATT MTU of 23 and 20 kB/s; target ≥ 0.7`),
      ];
    },
  },
  {
    name: "Tor vs the direct wire (a private Tor network on 127.0.0.1)",
    fullOnly: true,
    missing: () => torMissing(),
    async run() {
      const tor = await torVsDirect({ rounds: 5, count: 2000 });
      if (!tor) return [];
      return [
        result("tor-first-msg-vs-direct", tor.firstMessage.tor, tor.firstMessage.direct, "ms", "new sender (tor bootstrapped, no circuit yet) → first ack through an onion service on a private Tor network on 127.0.0.1, vs a new sender over direct mutual TLS on loopback, median of 5; lower is better; real relays add their round trips"),
        result("tor-msg-rate-vs-direct", tor.rate.tor, tor.rate.direct, "msg/s", "2,000 messages, 32 in flight, warm connection, through the onion service vs direct"),
      ];
    },
  },
  {
    name: "mDNS discovery between test hosts (network namespaces)",
    missing: () => (netnsUnavailable() ? `needs network namespaces (root and iproute2: apt-get install iproute2): ${netnsUnavailable()}` : undefined),
    async run(quick) {
      const discovery = await discoveryTimes(quick ? 2 : 5);
      if (!discovery) return [];
      return [
        result("mdns-found-vs-announce", discovery.foundMs, discovery.announceIntervalMs, "ms", "device started → found at a peer over a namespace bridge, median, beside the announce interval; target < 1000 ms"),
        result("mdns-crash-lost-vs-expiry", discovery.lostAfterCrashMs, discovery.expireMs, "ms", "SIGKILL → lost at a peer, median, beside the expiry; target < 5000 ms"),
        result("mdns-stop-lost-vs-announce", discovery.lostAfterStopMs, discovery.announceIntervalMs, "ms", "clean stop (goodbye) → lost at a peer, median, beside the announce interval"),
        ...(await privateDiscoveryResults(quick ? 2 : 5, discovery)),
      ];
    },
  },
];

/** Private discovery beside the public figures of the same run: found and lost, each as a ratio of time (target ≤ 1.11, i.e. ≥ 0.9× as fast). */
async function privateDiscoveryResults(rounds: number, open: DiscoveryTimes): Promise<BenchResult[]> {
  const privately = await discoveryTimes(rounds, true);
  if (!privately) return [];
  return [
    result("mdns-private-found-vs-public", privately.foundMs, open.foundMs, "ms", "private discovery (beacons) vs the id in TXT: device started → found, median; lower is better, target ≤ 1.11 (≥ 0.9× as fast)"),
    result("mdns-private-crash-lost-vs-public", privately.lostAfterCrashMs, open.lostAfterCrashMs, "ms", "private vs public: SIGKILL → lost, median; target ≤ 1.11"),
  ];
}

/** The machine the figures were taken on: ratios compare between runs of one machine, not across machines. */
function machine(): Record<string, unknown> {
  const nodeRed = (() => {
    try {
      return (JSON.parse(fs.readFileSync(require.resolve("node-red/package.json"), "utf8")) as { version: string }).version;
    } catch {
      return "not installed";
    }
  })();
  const mosquitto = spawnSync("mosquitto", ["-h"], { encoding: "utf8" }).stdout?.split("\n")[0]?.trim() || undefined;
  return { cores: os.cpus().length, cpu: os.cpus()[0]?.model, memoryGiB: Math.round(os.totalmem() / 2 ** 30), platform: `${os.type()} ${os.release()} ${os.arch()}`, node: process.version, nodeRed, mosquitto };
}

/**
 * npm run bench [-- --quick]: each figure of ours beside a baseline measured in the same run on this
 * machine, because absolute numbers drift on a shared machine; the ratio is what to compare between runs.
 * A benchmark whose requirement is missing here says what to install and is skipped; the rest still run.
 */
async function main(): Promise<void> {
  const quick = process.argv.includes("--quick");
  const started = Date.now();
  const results: BenchResult[] = [];
  const skipped: Array<{ name: string; why: string }> = [];
  const failed: Array<{ name: string; error: string }> = [];
  /** Each benchmark's CPU speeds as it started (see bench/core-speeds.ts). */
  const cores: Array<{ benchmark: string; loopMs?: number[] }> = [];
  const chosen = BENCHMARKS.filter((benchmark) => !(quick && benchmark.fullOnly) && (!benchmark.optIn || process.argv.includes(benchmark.optIn)));
  const optIns = BENCHMARKS.filter((benchmark) => benchmark.optIn && !chosen.includes(benchmark)).map((benchmark) => `${benchmark.optIn} for "${benchmark.name}"`);
  console.log(`${quick ? "quick" : "full"} set: ${chosen.length} benchmarks${quick ? ` (${BENCHMARKS.length - chosen.length} left out; run without --quick for all)` : ""}${optIns.length > 0 ? `; add ${optIns.join(", ")}` : ""}`);
  for (const [i, benchmark] of chosen.entries()) {
    const label = `[${i + 1}/${chosen.length}] ${benchmark.name}`;
    const why = benchmark.missing?.();
    if (why) {
      console.log(`${label}: skipped, ${why}`);
      skipped.push({ name: benchmark.name, why });
      continue;
    }
    const loopMs = coreSpeeds();
    cores.push({ benchmark: benchmark.name, loopMs });
    console.log(`${label} … (${describeCores(loopMs)})`);
    const at = Date.now();
    try {
      const rows = await benchmark.run(quick);
      results.push(...rows);
      console.log(`${label}: done in ${((Date.now() - at) / 1000).toFixed(0)} s${rows.map((row) => `\n    ${row.name}: ${row.ours} vs ${row.baseline} ${row.unit} (ratio ${row.ratio})`).join("")}`);
    } catch (err) {
      const error = (err as Error)?.stack ?? String(err);
      console.error(`${label}: FAILED\n${error}`);
      failed.push({ name: benchmark.name, error: (err as Error)?.message ?? String(err) });
    }
  }

  console.log("\n" + "benchmark".padEnd(30) + "ours".padStart(12) + "baseline".padStart(12) + "  unit   ratio");
  for (const row of results) console.log(row.name.padEnd(30) + String(row.ours).padStart(12) + String(row.baseline).padStart(12) + `  ${row.unit.padEnd(6)} ${row.ratio}`);
  for (const { name, why } of skipped) console.log(`skipped: ${name} (${why})`);
  for (const { name, error } of failed) console.log(`failed: ${name}: ${error}`);
  const uneven = cores.filter((entry) => entry.loopMs && coreSpread(entry.loopMs) > UNEVEN_CORES);
  for (const entry of uneven) console.log(`uneven CPUs as "${entry.benchmark}" started: ${describeCores(entry.loopMs)}`);
  const file = path.resolve(__dirname, "..", "..", "bench", quick ? "results-quick.json" : "results.json");
  const seconds = Math.round((Date.now() - started) / 1000);
  fs.writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), set: quick ? "quick" : "full", seconds, machine: machine(), cores, results, skipped, failed }, null, 2) + "\n");
  console.log(`\nwrote ${path.relative(process.cwd(), file)} in ${seconds} s`);
  // A skipped benchmark is this machine's lack; a failed one is a bug.
  process.exitCode = failed.length > 0 ? 1 : 0;
}

// Ctrl+C goes through process.exit so that the "exit" handlers stop the broker.
process.once("SIGINT", () => process.exit(130));

main().then(
  () => process.exit(),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
