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

export interface TestHost {
  index: number;
  namespace: string;
  address: string;
  /** The switch-side end of the host's link; taking it down cuts the host off. */
  switchPort: string;
}

export class TestNetwork {
  readonly hosts: TestHost[] = [];
  private readonly children = new Set<ChildProcess>();

  private constructor(readonly prefix: string) {}

  static create(hostCount: number): TestNetwork {
    const network = new TestNetwork(`pmt${process.pid}n${++networks}`);
    try {
      network.build(hostCount);
    } catch (err) {
      network.destroy();
      throw err;
    }
    return network;
  }

  private get switchNs(): string {
    return `${this.prefix}sw`;
  }

  private build(hostCount: number): void {
    const sw = this.switchNs;
    ip("netns", "add", sw);
    live.add(sw);
    ip("-n", sw, "link", "add", "br0", "type", "bridge");
    ip("-n", sw, "link", "set", "br0", "up");
    for (let index = 1; index <= hostCount; index++) {
      const ns = `${this.prefix}h${index}`;
      const port = `p${index}`;
      ip("netns", "add", ns);
      live.add(ns);
      ip("-n", sw, "link", "add", port, "type", "veth", "peer", "name", TEST_INTERFACE, "netns", ns);
      ip("-n", sw, "link", "set", port, "master", "br0", "up");
      const address = `169.254.77.${index}`;
      ip("-n", ns, "addr", "add", `${address}/16`, "dev", TEST_INTERFACE);
      ip("-n", ns, "link", "set", TEST_INTERFACE, "up");
      ip("-n", ns, "link", "set", "lo", "up");
      ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", TEST_INTERFACE);
      this.hosts.push({ index, namespace: ns, address, switchPort: port });
    }
  }

  linkDown(host: TestHost): void {
    ip("-n", this.switchNs, "link", "set", host.switchPort, "down");
  }

  linkUp(host: TestHost): void {
    ip("-n", this.switchNs, "link", "set", host.switchPort, "up");
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
