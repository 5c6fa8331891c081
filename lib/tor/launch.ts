import { type ChildProcess, spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { TorControl, TorControlError } from "./control";

export interface LaunchOptions {
  /** The tor binary; "tor" finds Debian's /usr/sbin/tor on the PATH. */
  binary?: string;
  /** Tor's DataDirectory (its keys, consensus cache and state); created with mode 0700. */
  dataDir: string;
  /** Further torrc lines (bridges, or a private test network's authorities). */
  torrc?: string[];
  /** How long tor may take to open its control port. */
  startTimeoutMs?: number;
}

export interface LaunchedTor {
  child: ChildProcess;
  control: TorControl;
  /** "127.0.0.1:port" of tor's SOCKS listener. */
  socksAddress: string;
}

const CONTROL_PORT_FILE = "control-port";
const LOG_TAIL_LINES = 8;

/**
 * Starts a tor process of its own for this device: SOCKS and control ports on 127.0.0.1 with ports tor
 * picks, cookie authentication, and ownership taken so that tor exits when this process or its control
 * connection goes away (nothing is left running after a crash).
 */
export async function launchTor(options: LaunchOptions): Promise<LaunchedTor> {
  const dataDir = path.resolve(options.dataDir);
  await fs.mkdir(dataDir, { recursive: true, mode: 0o700 });
  await fs.chmod(dataDir, 0o700); // tor refuses a DataDirectory others can read
  const portFile = path.join(dataDir, CONTROL_PORT_FILE);
  await fs.rm(portFile, { force: true });
  const torrc = [
    `DataDirectory ${dataDir}`,
    "SocksPort 127.0.0.1:auto",
    "ControlPort 127.0.0.1:auto",
    `ControlPortWriteToFile ${portFile}`,
    "CookieAuthentication 1",
    `CookieAuthFile ${path.join(dataDir, "control_auth_cookie")}`,
    `__OwningControllerProcess ${process.pid}`,
    "Log notice stdout",
    "AvoidDiskWrites 1",
    ...(options.torrc ?? []),
  ];
  const torrcFile = path.join(dataDir, "torrc");
  await fs.writeFile(torrcFile, `${torrc.join("\n")}\n`, { mode: 0o600 });
  const binary = options.binary?.trim() || "tor";
  const child = spawn(binary, ["-f", torrcFile, "--ignore-missing-torrc"], { stdio: ["ignore", "pipe", "pipe"] });
  const log: string[] = [];
  const keep = (chunk: Buffer): void => {
    log.push(...chunk.toString().split("\n").filter(Boolean));
    log.splice(0, Math.max(0, log.length - LOG_TAIL_LINES));
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  try {
    const controlAddress = await waitForControlPort(child, portFile, options.startTimeoutMs ?? 30_000, binary, log);
    const control = await TorControl.connect(controlAddress, { cookieDir: dataDir });
    // From here tor lives exactly as long as this control connection.
    await control.command("TAKEOWNERSHIP");
    await control.command("RESETCONF __OwningControllerProcess");
    const socksAddress = await control.socksAddress();
    if (!socksAddress) throw new TorControlError("tor opened no SOCKS port");
    return { child, control, socksAddress };
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
}

/** Ends a launched tor: closing the owning control connection makes it exit; SIGKILL if it lingers. */
export async function stopLaunchedTor(tor: LaunchedTor, graceMs = 5_000): Promise<void> {
  tor.control.close();
  if (tor.child.exitCode !== null || tor.child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => tor.child.kill("SIGKILL"), graceMs);
    tor.child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    tor.child.kill("SIGTERM");
  });
}

async function waitForControlPort(child: ChildProcess, portFile: string, timeoutMs: number, binary: string, log: string[]): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let exited: string | undefined;
  child.once("exit", (code, signal) => (exited = signal ? `was killed by ${signal}` : `exited with code ${code}`));
  let spawnError: Error | undefined;
  child.once("error", (err) => (spawnError = err));
  while (Date.now() < deadline) {
    if (spawnError) {
      const missing = (spawnError as NodeJS.ErrnoException).code === "ENOENT";
      throw new TorControlError(missing ? `tor is not installed (no "${binary}" on this machine; Debian: apt-get install tor)` : `cannot start ${binary}: ${spawnError.message}`);
    }
    if (exited) throw new TorControlError(`tor ${exited}: ${log.join(" | ") || "no output"}`);
    const text = await fs.readFile(portFile, "utf8").catch(() => "");
    const match = /PORT=(\S+)/.exec(text);
    if (match) return match[1];
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new TorControlError(`tor did not open its control port within ${timeoutMs} ms: ${log.join(" | ") || "no output"}`);
}
