import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { freePort } from "./ports";

/** Why the Tor tests cannot run here, or undefined when tor and tor-gencert are installed. */
export function torMissing(): string | undefined {
  for (const binary of ["tor", "tor-gencert"]) {
    const probe = spawnSync(binary, ["--version"], { stdio: "ignore" });
    if (probe.error) return `${binary} is not installed (Debian: apt-get install tor)`;
  }
  return undefined;
}

/**
 * For a suite's before hook: the test network, started, or the suite skipped with the reason where tor
 * or tor-gencert is missing.
 */
export async function torNetworkOrSkip(context: Mocha.Context): Promise<TorTestNetwork> {
  const missing = torMissing();
  if (missing) {
    console.log(`      skipped: ${missing}`);
    context.skip();
  }
  return TorTestNetwork.start();
}

/** Options every node of the test network shares: chutney's fast-bootstrap settings. */
const TESTING = [
  "TestingTorNetwork 1",
  "AssumeReachable 1",
  "PathsNeededToBuildCircuits 0.67",
  "TestingDirAuthVoteExit *",
  "TestingDirAuthVoteHSDir *",
  "TestingDirAuthVoteGuard *",
  "TestingMinExitFlagThreshold 0",
  "V3AuthNIntervalsValid 2",
];

interface Node {
  nick: string;
  dir: string;
  child?: ChildProcess;
}

/**
 * A private Tor network on 127.0.0.1 (TestingTorNetwork): three directory authorities and three relays
 * started from generated torrc files, never touching the public Tor network. Clients (the devices under
 * test) join it with `clientTorrc`. Every process is killed by stop(), and exits by itself if the test
 * process dies (__OwningControllerProcess).
 */
export class TorTestNetwork {
  private readonly nodes: Node[] = [];
  private authorityLines: string[] = [];

  private constructor(readonly dir: string) {}

  static async start(options: { authorities?: number; relays?: number } = {}): Promise<TorTestNetwork> {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "peer-mesh-tornet-"));
    const network = new TorTestNetwork(dir);
    try {
      await network.launch(options.authorities ?? 3, options.relays ?? 3);
    } catch (err) {
      await network.stop();
      throw err;
    }
    return network;
  }

  /** torrc lines for a client of this network: its authorities instead of the public ones. */
  get clientTorrc(): string[] {
    return [...TESTING, ...this.authorityLines];
  }

  private async launch(authorities: number, relays: number): Promise<void> {
    const auths = [];
    for (let i = 0; i < authorities; i++) auths.push({ nick: `auth${i}`, orPort: await freePort(), dirPort: await freePort() });
    for (const auth of auths) {
      const dir = path.join(this.dir, auth.nick);
      await fs.mkdir(path.join(dir, "keys"), { recursive: true, mode: 0o700 });
      const gencert = spawnSync("tor-gencert", ["--create-identity-key", "--passphrase-fd", "0", "-m", "12", "-a", `127.0.0.1:${auth.dirPort}`], { cwd: path.join(dir, "keys"), input: "\n" });
      if (gencert.status !== 0) throw new Error(`tor-gencert failed: ${gencert.stderr.toString()}`);
      const listing = spawnSync("tor", ["--list-fingerprint", "--orport", "1", "--dirserver", "x 127.0.0.1:1 ffffffffffffffffffffffffffffffffffffffff", "--datadirectory", dir]);
      if (listing.error) throw listing.error;
      const fingerprint = (await fs.readFile(path.join(dir, "fingerprint"), "utf8")).trim().split(" ").slice(1).join("");
      const certificate = await fs.readFile(path.join(dir, "keys", "authority_certificate"), "utf8");
      const v3ident = /^fingerprint (\S+)/m.exec(certificate)?.[1];
      if (!v3ident) throw new Error("tor-gencert wrote no fingerprint");
      this.authorityLines.push(`DirAuthority ${auth.nick} orport=${auth.orPort} no-v2 v3ident=${v3ident} 127.0.0.1:${auth.dirPort} ${fingerprint}`);
    }
    for (const auth of auths) {
      await this.startNode(auth.nick, [
        "AuthoritativeDirectory 1",
        "V3AuthoritativeDirectory 1",
        `ContactInfo ${auth.nick}@test.invalid`,
        "TestingV3AuthInitialVotingInterval 5",
        "TestingV3AuthInitialVoteDelay 2",
        "TestingV3AuthInitialDistDelay 2",
        "V3AuthVotingInterval 10",
        "V3AuthVoteDelay 2",
        "V3AuthDistDelay 2",
        `ORPort 127.0.0.1:${auth.orPort}`,
        `DirPort 127.0.0.1:${auth.dirPort}`,
        "Address 127.0.0.1",
        "ExitRelay 0",
        "SocksPort 0",
      ]);
    }
    for (let i = 0; i < relays; i++) {
      await this.startNode(`relay${i}`, [`ORPort 127.0.0.1:${await freePort()}`, "Address 127.0.0.1", "ExitRelay 0", "SocksPort 0"]);
    }
  }

  private async startNode(nick: string, lines: string[]): Promise<void> {
    const dir = path.join(this.dir, nick);
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    await fs.chmod(dir, 0o700);
    const torrc = [...TESTING, `Nickname ${nick}`, `DataDirectory ${dir}`, "ShutdownWaitLength 0", `Log notice file ${path.join(dir, "notice.log")}`, `__OwningControllerProcess ${process.pid}`, ...lines, ...this.authorityLines];
    await fs.writeFile(path.join(dir, "torrc"), `${torrc.join("\n")}\n`);
    const child = spawn("tor", ["-f", path.join(dir, "torrc"), "--ignore-missing-torrc"], { stdio: "ignore" });
    child.on("error", () => undefined);
    this.nodes.push({ nick, dir, child });
  }

  /**
   * A "tor binary" for places that take only a path (the identity-config node): it appends this network's
   * client settings to the torrc it is started with (tor -f <torrc> …) and runs the real tor.
   */
  async clientBinary(): Promise<string> {
    const extra = path.join(this.dir, "client-torrc");
    await fs.writeFile(extra, `${this.clientTorrc.join("\n")}\n`);
    const script = path.join(this.dir, "tor-on-test-network");
    await fs.writeFile(script, `#!/bin/sh\n[ "$1" = "-f" ] && cat '${extra}' >> "$2"\nexec tor "$@"\n`, { mode: 0o755 });
    return script;
  }

  /** The tail of a node's log, for a failing test's message. */
  async log(nick: string, lines = 20): Promise<string> {
    const text = await fs.readFile(path.join(this.dir, nick, "notice.log"), "utf8").catch(() => "");
    return text.split("\n").slice(-lines).join("\n");
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.nodes.map(
        (node) =>
          new Promise<void>((resolve) => {
            const child = node.child;
            if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once("exit", () => resolve());
            child.kill("SIGKILL");
          }),
      ),
    );
    await fs.rm(this.dir, { recursive: true, force: true });
  }
}
