import { ChildProcess, spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Identity } from "../lib";

export interface Broker {
  port: number;
  caPem: string;
  /** The broker's CPU time so far (user and system), in ms, from /proc; undefined where there is none. */
  cpuMs(): number | undefined;
  stop(): Promise<void>;
}

export function mosquittoAvailable(): boolean {
  return spawnSync("mosquitto", ["-h"]).error === undefined;
}

/** A mosquitto with a TLS listener on a loopback port of its own, started and stopped by the benchmark. */
export async function startMosquitto(port: number): Promise<Broker> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-mosquitto-"));
  const identity = Identity.generate({ name: "127.0.0.1" });
  // mosquitto started as root drops to its own user, which must be able to read this throwaway key.
  fs.chmodSync(dir, 0o755);
  fs.writeFileSync(path.join(dir, "key.pem"), identity.privateKeyPem, { mode: 0o644 });
  fs.writeFileSync(path.join(dir, "cert.pem"), identity.certificatePem);
  fs.writeFileSync(
    path.join(dir, "mosquitto.conf"),
    [`listener ${port} 127.0.0.1`, `certfile ${dir}/cert.pem`, `keyfile ${dir}/key.pem`, "tls_version tlsv1.3", "allow_anonymous true", "persistence false", "log_dest none", ""].join("\n"),
  );
  const child: ChildProcess = spawn("mosquitto", ["-c", path.join(dir, "mosquitto.conf")], { stdio: "ignore" });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  // An interrupted benchmark must not leave a broker behind.
  const killOnExit = (): void => void child.kill("SIGTERM");
  process.once("exit", killOnExit);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, "127.0.0.1", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) break;
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill();
      throw new Error("mosquitto did not start");
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    port,
    caPem: identity.certificatePem,
    cpuMs: () => processCpuMs(child.pid),
    async stop() {
      process.off("exit", killOnExit);
      child.kill("SIGTERM");
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** utime + stime of a process, from /proc/<pid>/stat (fields 14 and 15, in clock ticks of 10 ms on Linux). */
function processCpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces; the fields after it start past its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticksPerSecond = 100;
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond;
  } catch {
    return undefined;
  }
}
