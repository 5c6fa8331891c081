/**
 * Runs the suites that restart devices on the same storage again and again, each run in a fresh Node
 * process, and counts the runs that crashed (a signal, a native abort such as glibc's "corrupted size
 * vs. prev_size", or a segfault) apart from the runs whose tests merely failed.
 *
 *   npm run repeat -- [--runs 30] [--node /path/to/node] [suite.js …]
 *
 * The default suites: the mesh, the netns mesh and the fault suites, and those in which the abort was caught. A crash's output tail is kept in
 * <tmp>/peer-mesh-repeat/run-<n>.log with a Node diagnostic report when Node wrote one.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const root = path.resolve(__dirname, "..", "..");
/**
 * The suites that restart devices (mesh, netns mesh, faults), and those in which the native abort was
 * caught (pairing, acl, hostile peers and relays: many connections opened and retired under load).
 */
const DEFAULT_SUITES = [
  "dist/test/integration/mesh.test.js",
  "dist/test/netns/mesh.test.js",
  "dist/test/netns/faults.test.js",
  "dist/test/integration/pairing.test.js",
  "dist/test/integration/acl.test.js",
  "dist/test/integration/hostile-peers.test.js",
  "dist/test/integration/hostile-relays.test.js",
];
const CRASH = /corrupted size|double free|free\(\)|malloc\(\)|Segmentation fault|Aborted|FATAL ERROR|core dumped/;

interface Outcome {
  run: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  crashed: boolean;
  failing: number;
  ms: number;
}

function parseArgs(argv: string[]): { runs: number; node: string; suites: string[] } {
  let runs = 30;
  let node = process.execPath;
  const suites: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--runs") runs = Number(argv[++i]);
    else if (argv[i] === "--node") node = argv[++i];
    else suites.push(argv[i]);
  }
  if (!Number.isInteger(runs) || runs < 1 || runs > 1000) throw new Error("--runs takes a whole number from 1 to 1000");
  return { runs, node, suites: suites.length > 0 ? suites : DEFAULT_SUITES };
}

function runOnce(run: number, node: string, suites: string[], logDir: string): Promise<Outcome> {
  const started = Date.now();
  const reportDir = path.join(logDir, `report-${run}`);
  fs.mkdirSync(reportDir, { recursive: true });
  const mocha = path.join(root, "node_modules", "mocha", "bin", "mocha.js");
  const child = spawn(node, ["--report-on-fatalerror", "--report-on-signal", `--report-directory=${reportDir}`, mocha, "--no-config", "--timeout", "120000", "--reporter", "dot", ...suites], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-200_000);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  return new Promise((resolve) => {
    child.once("exit", (code, signal) => {
      const crashed = signal !== null || code === 134 || code === 139 || CRASH.test(output);
      const failing = Number(/(\d+) failing/.exec(output)?.[1] ?? 0);
      if (crashed || failing > 0) fs.writeFileSync(path.join(logDir, `run-${run}.log`), output);
      if (fs.readdirSync(reportDir).length === 0) fs.rmSync(reportDir, { recursive: true, force: true });
      resolve({ run, code, signal, crashed, failing, ms: Date.now() - started });
    });
  });
}

async function main(): Promise<void> {
  const { runs, node, suites } = parseArgs(process.argv.slice(2));
  const logDir = path.join(os.tmpdir(), "peer-mesh-repeat");
  fs.rmSync(logDir, { recursive: true, force: true });
  fs.mkdirSync(logDir, { recursive: true });
  console.log(`${runs} runs of ${suites.join(", ")} on ${node} (logs of crashed or failing runs in ${logDir})`);
  const outcomes: Outcome[] = [];
  for (let run = 1; run <= runs; run++) {
    const outcome = await runOnce(run, node, suites, logDir);
    outcomes.push(outcome);
    const verdict = outcome.crashed ? `CRASHED (exit ${outcome.code}, signal ${outcome.signal})` : outcome.failing > 0 ? `${outcome.failing} failing` : "ok";
    console.log(`run ${run}/${runs}: ${verdict} in ${(outcome.ms / 1000).toFixed(0)} s`);
  }
  const crashes = outcomes.filter((outcome) => outcome.crashed).length;
  const failed = outcomes.filter((outcome) => !outcome.crashed && outcome.failing > 0).length;
  console.log(`crashes/runs: ${crashes}/${runs}; runs with failing tests: ${failed}/${runs}`);
  process.exitCode = crashes > 0 || failed > 0 ? 1 : 0;
}

void main();
