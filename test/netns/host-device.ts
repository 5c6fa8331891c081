import type { ChildProcess } from "node:child_process";
import type { EventEmitter } from "node:events";
import { Identity, KnownPeer, PeerInfo } from "../../lib";
import { waitFor } from "../helpers/events";
import type { Request, StartCommand } from "./agent";
import { compiled, ipcEvents, netnsUnavailable, TEST_INTERFACE, TestHost, TestNetwork } from "./harness";

export interface MeshDelivery {
  id: string;
  from: string;
  topic: string;
  size: number;
  sha256: string;
  at: number;
}

export interface PeerEvent {
  event: "found" | "lost" | "changed";
  peer: PeerInfo;
  at: number;
}

export interface MdnsTiming {
  announceIntervalMs?: number;
  expireMs?: number;
}

/** A Device running in a test host's namespace, seen from the test. */
export class HostDevice {
  readonly identity = Identity.generate();
  readonly peerEvents: PeerEvent[] = [];
  private child?: ChildProcess;
  private events?: EventEmitter;
  private refs = 0;
  readonly deliveries: MeshDelivery[] = [];
  /** Wire messages handed to this device's flow (over all its lifetimes), by message id. */
  readonly received: Array<{ id: string; topic: string }> = [];
  /** Streams this device read to the end. */
  readonly streams: Array<{ id: string; bytes: number; sha256: string }> = [];
  /** Ids of messages this device sent and had acknowledged (reported as each ack came, so a kill loses none). */
  readonly acked: string[] = [];
  startedAt = 0;
  port = 0;

  constructor(
    private readonly network: TestNetwork,
    readonly host: TestHost,
    readonly name: string,
  ) {}

  get id(): string {
    return this.identity.deviceId;
  }

  /** Starts the device with mDNS on the test interface; resolves once it listens and advertises, with the time it did. */
  start(peers: KnownPeer[] = [], timing: MdnsTiming = {}): Promise<number> {
    return this.launch({ peers, mdns: { interface: TEST_INTERFACE, ...timing } });
  }

  /** Starts (or restarts, after a kill) the device with any agent options. */
  async launch(options: Omit<StartCommand, "type" | "bundlePem" | "name">): Promise<number> {
    const child = this.network.spawnNode(this.host, compiled("agent.js"));
    const events = ipcEvents(child);
    this.child = child;
    this.events = events;
    events.on("peer", (message: PeerEvent) => this.peerEvents.push(message));
    events.on("mesh-message", (message: MeshDelivery) => this.deliveries.push(message));
    events.on("message", (message: { id: string; topic: string }) => this.received.push({ id: message.id, topic: message.topic }));
    events.on("stream", (stream: { id: string; bytes: number; sha256: string }) => this.streams.push({ id: stream.id, bytes: stream.bytes, sha256: stream.sha256 }));
    events.on("send-acked", (message: { id: string }) => this.acked.push(message.id));
    events.on("failed", (message: { message: string }) => console.error(`agent ${this.name}: ${message.message}`));
    const ready = waitFor<[{ at: number; port: number }]>(events, "ready", () => true, 10_000, `${this.name} ready`);
    child.send({ type: "start", bundlePem: this.identity.toBundlePem(), name: this.name, ...options } satisfies StartCommand);
    const [message] = await ready;
    this.startedAt = message.at;
    this.port = message.port;
    return this.startedAt;
  }

  /** Asks the agent something; rejects with the agent's error. */
  async request<T>(request: Request, timeoutMs = 15_000): Promise<T> {
    const ref = ++this.refs;
    const answer = waitFor<[{ ref: number; result?: T; error?: { code?: string; message: string } }]>(this.events!, "reply", (m) => m.ref === ref, timeoutMs, `${this.name} ${request.type}`);
    this.child!.send({ ...request, ref });
    const [reply] = await answer;
    if (reply.error) throw Object.assign(new Error(reply.error.message), { code: reply.error.code });
    return reply.result as T;
  }

  /** Resolves once `count` mesh messages have reached this device's flow (over all its lifetimes). */
  async delivered(count: number, timeoutMs: number): Promise<MeshDelivery[]> {
    if (this.deliveries.length < count) {
      await waitFor(this.events!, "mesh-message", () => this.deliveries.length >= count, timeoutMs, `${this.name}: ${count} mesh messages (have ${this.deliveries.length})`);
    }
    return this.deliveries;
  }

  /** Resolves once `check` holds, looked at after each of the agent's events named `event`. */
  async until(event: string, check: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (!check()) await waitFor(this.events!, event, check, timeoutMs, `${this.name}: ${what}`);
  }

  /** The agent's own events (sync reports, acks, ...), for waiting on one. */
  get agentEvents(): EventEmitter {
    return this.events!;
  }

  /** Waits for a peer event about `id` that happens after `since`, looking at ones already received first. */
  async peerEvent(event: PeerEvent["event"], id: string, timeoutMs: number, since = 0): Promise<PeerEvent> {
    const matches = (message: PeerEvent): boolean => message.event === event && message.peer.id === id && message.at >= since;
    const earlier = this.peerEvents.find(matches);
    if (earlier) return earlier;
    const [message] = await waitFor<[PeerEvent]>(this.events!, "peer", matches, timeoutMs, `${this.name}: ${event} ${id.slice(0, 8)}`);
    return message;
  }

  async send(to: string, topic: string, payload: unknown): Promise<{ ack?: { receivers: number }; error?: { code: string; message: string } }> {
    try {
      return await this.request<{ ack: { receivers: number } }>({ type: "send", to, topic, payload });
    } catch (err) {
      return { error: { code: (err as { code: string }).code, message: (err as Error).message } };
    }
  }

  nextMessage(topic: string, timeoutMs: number): Promise<[{ from: string; topic: string; payload: unknown; at: number }]> {
    return waitFor(this.events!, "message", (m) => m.topic === topic, timeoutMs, `${this.name} message on ${topic}`);
  }

  private get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** A clean stop: the device says goodbye. Resolves with the time it began. */
  async stop(): Promise<number> {
    const at = Date.now();
    if (!this.running) return at;
    const exited = waitFor(this.events!, "exit", () => true, 10_000, `${this.name} exit`);
    this.child!.send({ type: "stop" });
    await exited;
    return at;
  }

  /** SIGKILL: no goodbye. Resolves with the time of the kill. */
  async kill(): Promise<number> {
    const at = Date.now();
    if (!this.running) return at;
    const exited = waitFor(this.events!, "exit", () => true, 10_000, `${this.name} exit`);
    this.child!.kill("SIGKILL");
    await exited;
    return at;
  }
}

/**
 * Mocha hooks for a suite of test hosts: skips the suite where namespaces are unavailable (saying why),
 * and after each test kills every device and removes the network, whatever the test left behind.
 */
export function useTestHosts(): { hosts(count: number, segments?: number[][], names?: string[]): HostDevice[]; readonly network: TestNetwork } {
  const unavailable = netnsUnavailable();
  let network: TestNetwork | undefined;
  let devices: HostDevice[] = [];
  before(function () {
    if (unavailable) {
      console.log(`      skipped: ${unavailable}`);
      this.skip();
    }
  });
  afterEach(async () => {
    await Promise.all(devices.map((device) => device.kill()));
    devices = [];
    network?.destroy();
    network = undefined;
  });
  return {
    hosts(count, segments, names) {
      network = TestNetwork.create(count, segments);
      devices = network.hosts.map((host) => new HostDevice(network!, host, names?.[host.index - 1] ?? `host${host.index}`));
      return devices;
    },
    get network() {
      if (!network) throw new Error("no test network: call hosts() first");
      return network;
    },
  };
}
