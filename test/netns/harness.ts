import { ChildProcess, execFileSync, spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import path from "node:path";

/**
 * Test hosts in network namespaces: a "switch" namespace holding a bridge, and one namespace per host
 * joined to it by a veth pair, with link-local 169.254.77.x addresses and a multicast route on the test
 * interface. Nothing is created in the machine's own namespace, so no multicast can reach its real
 * interfaces. Every namespace is removed by destroy(), and by a process exit hook if a test dies first.
 */

const live = new Set<string>();
process.once("exit", () => {
  for (const ns of live) deleteNamespace(ns);
});
// A run ended by a signal (a CI timeout sends SIGTERM) exits without "exit" hooks: clean up, then die of it.
for (const signal of ["SIGTERM", "SIGHUP"] as const) {
  process.once(signal, () => {
    for (const ns of live) deleteNamespace(ns);
    process.kill(process.pid, signal);
  });
}

/** Namespaces left by a test process that died by SIGKILL (no hook ran): "pmt<pid>n<k>…" whose pid is gone. */
function removeOrphans(): void {
  let names: string[];
  try {
    names = ip("netns", "list").split("\n").map((line) => line.split(" ")[0]).filter(Boolean);
  } catch {
    return;
  }
  for (const ns of names) {
    const pid = Number(/^pmt(\d+)n\d+/.exec(ns)?.[1]);
    if (!pid || pid === process.pid) continue;
    try {
      process.kill(pid, 0);
    } catch {
      deleteNamespace(ns);
    }
  }
}

function ip(...args: string[]): string {
  return execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

function deleteNamespace(ns: string): void {
  try {
    execFileSync("ip", ["netns", "pids", ns], { encoding: "utf8" })
      .split(/\s+/)
      .filter(Boolean)
      .forEach((pid) => {
        try {
          process.kill(Number(pid), "SIGKILL");
        } catch {
          /* already gone */
        }
      });
  } catch {
    /* no such namespace */
  }
  try {
    execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" });
  } catch {
    /* already gone */
  }
  live.delete(ns);
}

function nft(ns: string, ruleset: string): void {
  execFileSync("ip", ["netns", "exec", ns, "nft", "-f", "-"], { input: ruleset, stdio: ["pipe", "ignore", "pipe"] });
}

/** Why packet loss cannot be made here (nftables missing), or undefined when it can. */
export function nftUnavailable(): string | undefined {
  try {
    execFileSync("nft", ["--version"], { stdio: "ignore" });
    return undefined;
  } catch {
    return "nft (Debian package nftables) is not installed";
  }
}

/** Why namespaces cannot be used here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.platform !== "linux") return "network namespaces need Linux";
  if (process.getuid?.() !== 0) return "network namespaces need root";
  const probe = `pmprobe${process.pid}`;
  try {
    ip("netns", "add", probe);
    deleteNamespace(probe);
    return undefined;
  } catch (err) {
    return `"ip netns add" failed: ${(err as Error).message.split("\n")[0]}`;
  }
}

export const TEST_INTERFACE = "mesh0";
let networks = 0;

export interface HostLink {
  segment: number;
  /** The interface inside the host's namespace. */
  interface: string;
  address: string;
  /** The switch-side end; taking it down cuts the host off this segment. */
  switchPort: string;
}

export interface TestHost {
  index: number;
  namespace: string;
  /** The address on the host's first segment. */
  address: string;
  /** The switch-side end of the host's first link. */
  switchPort: string;
  links: HostLink[];
}

export class TestNetwork {
  readonly hosts: TestHost[] = [];
  private readonly children = new Set<ChildProcess>();

  private constructor(readonly prefix: string) {}

  /**
   * `segments` lists, per segment (one bridge each), the 1-based host indexes on it; a host on two
   * segments relays between devices that cannot reach each other. Default: every host on one segment.
   * Segment s uses 169.254.(76+s).<host>/24, so hosts on different segments have no route to each other.
   */
  static create(hostCount: number, segments: number[][] = [Array.from({ length: hostCount }, (_, i) => i + 1)]): TestNetwork {
    if (networks === 0) removeOrphans();
    const network = new TestNetwork(`pmt${process.pid}n${++networks}`);
    try {
      network.build(hostCount, segments);
    } catch (err) {
      network.destroy();
      throw err;
    }
    return network;
  }

  private get switchNs(): string {
    return `${this.prefix}sw`;
  }

  private build(hostCount: number, segments: number[][]): void {
    const sw = this.switchNs;
    ip("netns", "add", sw);
    live.add(sw);
    for (let index = 1; index <= hostCount; index++) {
      const ns = `${this.prefix}h${index}`;
      ip("netns", "add", ns);
      live.add(ns);
      ip("-n", ns, "link", "set", "lo", "up");
      this.hosts.push({ index, namespace: ns, address: "", switchPort: "", links: [] });
    }
    segments.forEach((members, s) => {
      const bridge = `br${s}`;
      ip("-n", sw, "link", "add", bridge, "type", "bridge");
      ip("-n", sw, "link", "set", bridge, "up");
      for (const index of members) {
        const host = this.hosts[index - 1];
        const iface = host.links.length === 0 ? TEST_INTERFACE : `mesh${host.links.length}`;
        const port = `p${index}s${s}`;
        const address = segments.length === 1 ? `169.254.77.${index}` : `169.254.${76 + s}.${index}`;
        ip("-n", sw, "link", "add", port, "type", "veth", "peer", "name", iface, "netns", host.namespace);
        ip("-n", sw, "link", "set", port, "master", bridge, "up");
        ip("-n", host.namespace, "addr", "add", `${address}/${segments.length === 1 ? 16 : 24}`, "dev", iface);
        ip("-n", host.namespace, "link", "set", iface, "up");
        // Multicast stays on the test interface (and only the first one: mDNS binds one interface).
        if (host.links.length === 0) ip("-n", host.namespace, "route", "add", "224.0.0.0/4", "dev", iface);
        host.links.push({ segment: s, interface: iface, address, switchPort: port });
        if (host.links.length === 1) Object.assign(host, { address, switchPort: port });
      }
    });
  }

  /** Where `from` reaches `to`: `to`'s address on a segment they share. */
  addressOn(from: TestHost, to: TestHost): string | undefined {
    const shared = to.links.find((link) => from.links.some((own) => own.segment === link.segment));
    return shared?.address;
  }

  linkDown(host: TestHost, segment = host.links[0].segment): void {
    ip("-n", this.switchNs, "link", "set", this.link(host, segment).switchPort, "down");
  }

  linkUp(host: TestHost, segment = host.links[0].segment): void {
    ip("-n", this.switchNs, "link", "set", this.link(host, segment).switchPort, "up");
  }

  /**
   * Drops `percent` % of the packets the host sends on its test links, at random (nftables: the kernel
   * here has no netem). Set on both ends, every packet crossing the link has that chance of being lost.
   */
  loss(host: TestHost, percent: number): void {
    nft(host.namespace, `table inet fault { chain out { type filter hook output priority 0; oifname "mesh*" numgen random mod 100 < ${Math.round(percent)} drop; }; }`);
  }

  /** Caps what the host sends on its first link (tc's token bucket), so a transfer lasts long enough to be hit by a fault. */
  rateLimit(host: TestHost, rate: string): void {
    ip("-n", host.namespace, "link", "set", host.links[0].interface, "up");
    execFileSync("ip", ["netns", "exec", host.namespace, "tc", "qdisc", "replace", "dev", host.links[0].interface, "root", "tbf", "rate", rate, "burst", "32kbit", "latency", "400ms"], { stdio: "ignore" });
  }


  /**
   * A path from `from` to `to` that holds every byte `delayMs` in each direction (see delay-relay.ts).
   * Resolves with the address `from` dials instead of `to`'s own.
   */
  async delayedPath(from: TestHost, to: TestHost, port: number, delayMs: number, listenPort = 17_000 + to.index): Promise<string> {
    const target = this.addressOn(from, to);
    if (!target) throw new Error(`hosts ${from.index} and ${to.index} share no segment`);
    const relay = this.spawnNode(from, compiled("delay-relay.js"), [String(listenPort), target, String(port), String(delayMs)]);
    await new Promise<void>((resolve, reject) => {
      relay.once("message", () => resolve());
      relay.once("exit", (code) => reject(new Error(`delay relay exited (${code})`)));
    });
    return `127.0.0.1:${listenPort}`;
  }

  private link(host: TestHost, segment: number): HostLink {
    const link = host.links.find((candidate) => candidate.segment === segment);
    if (!link) throw new Error(`host ${host.index} is not on segment ${segment}`);
    return link;
  }

  /** Runs a compiled script inside the host's namespace, with an IPC channel to this process. */
  spawnNode(host: TestHost, script: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): ChildProcess {
    const child = spawn("ip", ["netns", "exec", host.namespace, process.execPath, script, ...args], {
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      env: { ...process.env, ...env },
    });
    this.children.add(child);
    child.once("exit", () => this.children.delete(child));
    return child;
  }

  destroy(): void {
    for (const child of this.children) child.kill("SIGKILL");
    for (const host of this.hosts) deleteNamespace(host.namespace);
    deleteNamespace(this.switchNs);
  }
}

/** Resolves a compiled file next to this one in dist/. */
export function compiled(name: string): string {
  return path.join(__dirname, name);
}

/** A child's IPC messages as events named by their `type`. */
export function ipcEvents(child: ChildProcess): EventEmitter {
  const events = new EventEmitter();
  child.on("message", (message: { type: string }) => events.emit(message.type, message));
  child.once("exit", (code, signal) => events.emit("exit", { code, signal }));
  return events;
}
