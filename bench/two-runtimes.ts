import { type ChildProcess, fork } from "node:child_process";
import path from "node:path";
import { Identity } from "../lib";
import { freePort } from "../test/helpers/ports";
import type { Broker } from "./mosquitto";
import type { ChildCommand, ChildReport } from "./runtime-child";
import { median } from "./stats";

/** One path's figures: its rate, and the CPU each runtime (and the broker) spent per message. */
export interface PathFigures {
  rate: number;
  senderCpuUs: number;
  receiverCpuUs: number;
  brokerCpuUs: number;
}

class Runtime {
  private readonly child: ChildProcess;
  private readonly listeners = new Set<(report: ChildReport) => void>();

  constructor(readonly name: string) {
    // PEER_MESH_BENCH_PROFILE=<dir> writes each runtime's CPU profile there (where the time goes per side).
    const profileDir = process.env.PEER_MESH_BENCH_PROFILE;
    const execArgv = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`, "--cpu-prof-name", `${name.replace(/ /g, "-")}.cpuprofile`] : [];
    this.child = fork(path.join(__dirname, "runtime-child.js"), [], { execArgv, stdio: ["ignore", "inherit", "inherit", "ipc"] });
    this.child.on("message", (report: ChildReport) => {
      for (const listener of [...this.listeners]) listener(report);
    });
  }

  send(command: ChildCommand): void {
    this.child.send(command);
  }

  on(listener: (report: ChildReport) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves with the next report of type `type`; a "failed" report rejects. */
  expect<T extends ChildReport["type"]>(type: T, timeoutMs = 60_000): Promise<Extract<ChildReport, { type: T }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`${this.name}: no "${type}" within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.on((report) => {
        if (report.type !== "failed" && report.type !== type) return;
        clearTimeout(timer);
        off();
        if (report.type === "failed") reject(new Error(`${this.name}: ${report.error}`));
        else resolve(report as Extract<ChildReport, { type: T }>);
      });
    });
  }

  ask<T extends ChildReport["type"]>(command: ChildCommand, type: T): Promise<Extract<ChildReport, { type: T }>> {
    const answer = this.expect(type);
    this.send(command);
    return answer;
  }

  async cpuMs(): Promise<number> {
    return (await this.ask({ type: "cpu" }, "cpu")).ms;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.send({ type: "stop" });
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

/** No arrival for this long ends a round as stalled: the path lost messages, and their credit with them. */
const STALL_MS = 10_000;

/** A round that stalled: how many of its messages arrived. */
export interface Stall {
  stalled: true;
  arrived: number;
  count: number;
}

/**
 * Sends `count` messages from the sender's entry to the receiver's sink with `window` in flight (the
 * receiver's counts come back as the sender's credit) and returns the rate and each side's CPU time,
 * or, when it stalls, how many arrived.
 */
async function drive(sender: Runtime, receiver: Runtime, broker: Broker | undefined, path: { entry: string; sink: string }, topic: string, count: number, window: number): Promise<PathFigures | Stall> {
  await receiver.ask({ type: "count", sink: path.sink, expect: count }, "counting");
  let arrived = 0;
  let lastArrival = performance.now();
  const relay = receiver.on((report) => {
    if (report.type !== "got") return;
    arrived += report.n;
    lastArrival = performance.now();
    sender.send({ type: "credit", n: report.n });
  });
  let watchdog: NodeJS.Timeout | undefined;
  try {
    const [senderBefore, receiverBefore] = await Promise.all([sender.cpuMs(), receiver.cpuMs()]);
    const brokerBefore = broker?.cpuMs() ?? 0;
    const started = performance.now();
    lastArrival = started;
    const stalled = new Promise<Stall>((resolve) => {
      watchdog = setInterval(() => {
        if (performance.now() - lastArrival > STALL_MS) resolve({ stalled: true, arrived, count });
      }, 1_000);
    });
    const counted = receiver.expect("counted", 3_600_000);
    sender.send({ type: "drive", entry: path.entry, topic, count, window });
    const outcome = await Promise.race([counted, stalled]);
    if ("stalled" in outcome) {
      await Promise.all([receiver.ask({ type: "reset" }, "reset"), sender.ask({ type: "reset" }, "reset")]);
      return outcome;
    }
    const seconds = (performance.now() - started) / 1000;
    const [senderAfter, receiverAfter] = await Promise.all([sender.cpuMs(), receiver.cpuMs()]);
    const brokerAfter = broker?.cpuMs() ?? 0;
    const perMessageUs = (ms: number): number => (ms * 1000) / count;
    return {
      rate: count / seconds,
      senderCpuUs: perMessageUs(senderAfter - senderBefore),
      receiverCpuUs: perMessageUs(receiverAfter - receiverBefore),
      brokerCpuUs: perMessageUs(brokerAfter - brokerBefore),
    };
  } finally {
    clearInterval(watchdog);
    relay();
  }
}

/**
 * peer send → peer receive and mqtt out → mosquitto (TLS) → mqtt in with each end in a Node-RED process
 * of its own, as two devices would be: both paths live in the same two runtimes and take turns.
 */
export async function messagesBetweenRuntimes(broker: Broker, options: { count: number; window: number; rounds: number }): Promise<{ ours: PathFigures; mqtt: PathFigures; stalls: { ours: Stall[]; mqtt: Stall[] } }> {
  const a = Identity.generate();
  const b = Identity.generate();
  const bPort = await freePort();
  const mqttConfig = [
    { id: "mqttTls", type: "tls-config", cert: "", key: "", ca: "", certname: "", keyname: "", caname: "", servername: "", alpnprotocol: "", verifyservercert: false },
    { id: "mqttBroker", type: "mqtt-broker", broker: "127.0.0.1", port: String(broker.port), usetls: true, tls: "mqttTls", protocolVersion: "4", keepalive: "60", cleansession: true, autoConnect: true },
  ];
  const sender = new Runtime("sending runtime");
  const receiver = new Runtime("receiving runtime");
  try {
    await Promise.all([
      receiver.ask(
        {
          type: "start",
          flows: [
            { id: "tab", type: "tab" },
            { id: "idB", type: "identity-config", port: bPort, peers: [{ id: a.deviceId, name: "A" }] },
            ...mqttConfig,
            { id: "peerIn", type: "peer-receive", z: "tab", identity: "idB", topic: "bench/#", wires: [["peerSink"]] },
            { id: "mqttIn", type: "mqtt in", z: "tab", broker: "mqttBroker", topic: "bench/#", qos: "1", datatype: "json", wires: [["mqttSink"]] },
            { id: "peerSink", type: "junction", z: "tab", wires: [[]] },
            { id: "mqttSink", type: "junction", z: "tab", wires: [[]] },
          ],
          credentials: { idB: { privateKey: b.privateKeyPem, certificate: b.certificatePem } },
          waitFor: ["idB", "mqttBroker"],
        },
        "started",
      ),
      sender.ask(
        {
          type: "start",
          flows: [
            { id: "tab", type: "tab" },
            { id: "idA", type: "identity-config", port: 0, peers: [{ id: b.deviceId, name: "B", address: `127.0.0.1:${bPort}` }] },
            ...mqttConfig,
            { id: "mqttOut", type: "mqtt out", z: "tab", broker: "mqttBroker", topic: "", qos: "1", retain: "false", wires: [] },
            { id: "peerOut", type: "peer-send", z: "tab", identity: "idA", peer: "B", timeout: 30, wires: [[]] },
          ],
          credentials: { idA: { privateKey: a.privateKeyPem, certificate: a.certificatePem } },
          waitFor: ["idA", "mqttBroker"],
        },
        "started",
      ),
    ]);
    const paths = {
      ours: { entry: "peerOut", sink: "peerSink", broker: undefined },
      mqtt: { entry: "mqttOut", sink: "mqttSink", broker },
    };
    // The receiver's MQTT subscription is sent on connect but acknowledged later, by the broker, on
    // another connection than the sender's: give it time, or the first messages find no subscriber.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    // Warm up connections, subscriptions and the JIT on both paths before measuring.
    for (const p of Object.values(paths)) await drive(sender, receiver, p.broker, p, "bench/warm", 3_000, options.window);
    const rounds: Record<"ours" | "mqtt", PathFigures[]> = { ours: [], mqtt: [] };
    // A round that stalls (its path lost messages) is reported, not measured: the medians are of the others.
    const stalls: Record<"ours" | "mqtt", Stall[]> = { ours: [], mqtt: [] };
    for (let round = 0; round < options.rounds; round++) {
      for (const key of ["ours", "mqtt"] as const) {
        const figures = await drive(sender, receiver, paths[key].broker, paths[key], "bench/rate", options.count, options.window);
        if ("stalled" in figures) stalls[key].push(figures);
        else rounds[key].push(figures);
      }
    }
    const summary = (list: PathFigures[]): PathFigures => ({
      rate: median(list.map((f) => f.rate)),
      senderCpuUs: median(list.map((f) => f.senderCpuUs)),
      receiverCpuUs: median(list.map((f) => f.receiverCpuUs)),
      brokerCpuUs: median(list.map((f) => f.brokerCpuUs)),
    });
    return { ours: summary(rounds.ours), mqtt: summary(rounds.mqtt), stalls };
  } finally {
    await Promise.all([sender.stop(), receiver.stop()]);
  }
}
