import { spawnSync } from "node:child_process";
import os from "node:os";

/**
 * The same loop of plain JS, run pinned to each CPU in turn (taskset), in ms per CPU.
 *
 * Why: on the 2-core machine these figures come from, the two virtual CPUs do not always run at the same
 * speed. On 2026-12-07 this loop took 530 ms on one and 395 on the other, minutes later 393 and 460 (the
 * slow one changes), and a Node-RED process sending peer messages ran at 13–14 µs of CPU a message on the
 * fast one and 20–23 on the slow one: whole runs of the message benchmark came out about 1.5x apart,
 * depending on where the scheduler put the process. A ratio of two paths measured in turn is off by as
 * much when the process changes CPU between them, so each benchmark records the spread it started with.
 */
const LOOP_ITERATIONS = 100_000_000;
const LOOP = `let x = 0; const t = process.hrtime.bigint(); for (let i = 0; i < ${LOOP_ITERATIONS}; i++) x += i % 7; process.stdout.write(String(x > 0 ? Number(process.hrtime.bigint() - t) / 1e6 : 0));`;

/** CPUs timed at most: each takes a few hundred ms, before every benchmark. */
const MAX_CPUS_TIMED = 8;

/** Ms the loop took on each CPU (the first 8), or undefined where CPUs cannot be pinned (no taskset, not Linux). */
export function coreSpeeds(cpus = Math.min(MAX_CPUS_TIMED, os.cpus().length)): number[] | undefined {
  if (process.platform !== "linux") return undefined;
  const times: number[] = [];
  for (let cpu = 0; cpu < cpus; cpu++) {
    const run = spawnSync("taskset", ["-c", String(cpu), process.execPath, "-e", LOOP], { encoding: "utf8", timeout: 30_000 });
    const ms = Number(run.stdout);
    if (run.status !== 0 || !Number.isFinite(ms) || ms <= 0) return undefined;
    times.push(Math.round(ms));
  }
  return times;
}

/** Above this, the slowest CPU's time over the fastest's, the CPUs count as uneven. */
export const UNEVEN_CORES = 1.15;

/** How much slower the slowest CPU ran than the fastest (1 = even). */
export function coreSpread(times: number[]): number {
  return Math.max(...times) / Math.min(...times);
}

/** One line for the bench's output. */
export function describeCores(times: number[] | undefined): string {
  if (!times) return "CPU speeds not measured (needs Linux and taskset)";
  const spread = coreSpread(times);
  const uneven = spread > UNEVEN_CORES ? ` — uneven (${spread.toFixed(2)}x): a ratio of two paths measured in turn may be off by up to that much` : "";
  return `the same loop on each CPU: ${times.map((ms) => `${ms} ms`).join(" / ")}${uneven}`;
}
