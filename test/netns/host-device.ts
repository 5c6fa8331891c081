import type { ChildProcess } from "node:child_process";
import type { EventEmitter } from "node:events";
import { Identity, KnownPeer, PeerInfo } from "../../lib";
import { waitFor } from "../helpers/events";
import { compiled, ipcEvents, TEST_INTERFACE, TestHost, TestNetwork } from "./harness";

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
  startedAt = 0;

  constructor(
    private readonly network: TestNetwork,
    readonly host: TestHost,
    readonly name: string,
  ) {}

  get id(): string {
    return this.identity.deviceId;
  }

  /** Starts the device; resolves once it listens and advertises, with the time it did. */
  async start(peers: KnownPeer[] = [], timing: MdnsTiming = {}): Promise<number> {
    const child = this.network.spawnNode(this.host, compiled("agent.js"));
    const events = ipcEvents(child);
    this.child = child;
    this.events = events;
    events.on("peer", (message: PeerEvent) => this.peerEvents.push(message));
    events.on("failed", (message: { message: string }) => console.error(`agent ${this.name}: ${message.message}`));
    const ready = waitFor<[{ at: number }]>(events, "ready", () => true, 10_000, `${this.name} ready`);
    child.send({ type: "start", bundlePem: this.identity.toBundlePem(), name: this.name, peers, mdns: { interface: TEST_INTERFACE, ...timing } });
    this.startedAt = (await ready)[0].at;
    return this.startedAt;
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
    const ref = ++this.refs;
    const answer = waitFor<[{ ref: number; ack?: { receivers: number }; error?: { code: string; message: string } }]>(this.events!, "sent", (m) => m.ref === ref, 15_000, `${this.name} send`);
    this.child!.send({ type: "send", ref, to, topic, payload });
    return (await answer)[0];
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
