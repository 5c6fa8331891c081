import { ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { demoFlow } from "./demo-flow";

const projectRoot = path.resolve(__dirname, "..", "..");
const PACKAGE_NAME = "@peer-mesh/node-red-peer-mesh";

export interface DemoOptions {
  /** The Node-RED user directory; the project's own .demo/ by default, never ~/.node-red. */
  userDir?: string;
  port?: number;
  /** Port of the gateway identity's listener in the demo flow. */
  gatewayPort?: number;
  /** Where Node-RED's output goes; inherited by default. */
  stdio?: "inherit" | "pipe";
  /** Node-RED's red.js; the devDependency by default. */
  redJs?: string;
  /** The Node.js binary to run it with. */
  nodeBinary?: string;
  /** Options for that Node.js, before red.js (a benchmark's --expose-gc and preload). */
  nodeArgs?: string[];
  /**
   * A bare runtime for the palette test: this package is not linked in, the demo is not deployed, and
   * the palette may install (and upload) modules.
   */
  bare?: boolean;
  /** Deploy the demo flow and the examples on first start (default true). */
  deployDemo?: boolean;
}

export interface RunningDemo {
  url: string;
  userDir: string;
  child: ChildProcess;
  /** Stops Node-RED and resolves once the process has exited. */
  stop(): Promise<void>;
}

/** A user directory in which this package is installed the way the palette would (a link into node_modules). */
function prepareUserDir(userDir: string, port: number, bare: boolean): string {
  fs.mkdirSync(userDir, { recursive: true });
  if (!bare) {
    const scope = path.join(userDir, "node_modules", ...PACKAGE_NAME.split("/").slice(0, -1));
    fs.mkdirSync(scope, { recursive: true });
    const link = path.join(userDir, "node_modules", PACKAGE_NAME);
    if (!fs.existsSync(link)) fs.symlinkSync(projectRoot, link, "dir");
  }
  const settings = path.join(userDir, "settings.js");
  fs.writeFileSync(
    settings,
    `// Written by npm start: the demo runtime listens on loopback only and calls no outside service.
module.exports = {
  uiHost: "127.0.0.1",
  uiPort: ${port},
  flowFile: "flows.json",
  telemetry: { enabled: false },
  // The diagnostics route (local, behind the admin API) tells npm start when the flows have started.
  diagnostics: { enabled: true, ui: false },
  externalModules: { autoInstall: false, palette: { allowInstall: ${bare}, allowUpload: ${bare} } },
  editorTheme: { projects: { enabled: false }, tours: false },
  logging: { console: { level: "info" } },
};
`,
  );
  return settings;
}

/**
 * Waits until Node-RED has loaded and started its flows, not only until its editor answers: the HTTP
 * server is up first (node-red#1287), and a GET /flows in between fails inside Node-RED ("Cannot read
 * properties of null (reading 'flows')", logged as an error). The first start then took the failed
 * read for "no flows yet"; a later start would have deployed the demo over the user's own flows.
 */
export async function waitForEditor(url: string, child: Pick<ChildProcess, "exitCode">, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`Node-RED exited with code ${child.exitCode} while starting`);
    try {
      const res = await fetch(`${url}/diagnostics`);
      const report = res.ok ? ((await res.json()) as { runtime?: { flows?: { started?: boolean } } }) : undefined;
      if (report?.runtime?.flows?.started === true) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`Node-RED did not start its flows on ${url} within ${timeoutMs / 1000} s`);
}

/** The example flows shipped in examples/ (Import → Examples in the editor), each on its own tab. */
export function exampleFlows(): Array<Record<string, unknown>> {
  const dir = path.join(projectRoot, "examples");
  return fs
    .readdirSync(dir)
    .filter((file) => file.endsWith(".json"))
    .sort()
    .flatMap((file) => JSON.parse(fs.readFileSync(path.join(dir, file), "utf8")) as Array<Record<string, unknown>>);
}

/** Deploys the demo flow and the examples on first start; later starts keep what the user deployed. */
async function deployDemoOnce(url: string, gatewayPort: number): Promise<boolean> {
  const read = await fetch(`${url}/flows`);
  // Never deploy on a failed read: it would replace whatever the user deployed.
  if (!read.ok) throw new Error(`reading the deployed flows failed: ${read.status} ${await read.text()}`);
  const current = (await read.json()) as unknown[];
  if (Array.isArray(current) && current.length > 0) return false;
  const res = await fetch(`${url}/flows`, {
    method: "POST",
    headers: { "content-type": "application/json", "Node-RED-Deployment-Type": "full" },
    body: JSON.stringify([...demoFlow({ gatewayPort }), ...exampleFlows()]),
  });
  if (!res.ok) throw new Error(`deploying the demo flow failed: ${res.status} ${await res.text()}`);
  return true;
}

export async function startDemo(options: DemoOptions = {}): Promise<RunningDemo> {
  const userDir = path.resolve(options.userDir ?? path.join(projectRoot, ".demo"));
  const port = options.port ?? 1880;
  const url = `http://127.0.0.1:${port}`;
  const settings = prepareUserDir(userDir, port, options.bare === true);
  const redJs = options.redJs ?? require.resolve("node-red/red.js");
  const child = spawn(options.nodeBinary ?? process.execPath, [...(options.nodeArgs ?? []), redJs, "--userDir", userDir, "--settings", settings], {
    stdio: options.stdio === "pipe" ? ["ignore", "pipe", "pipe"] : "inherit",
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGINT");
    await exited;
  };
  try {
    await waitForEditor(url, child, 60_000);
    if (!options.bare && options.deployDemo !== false) await deployDemoOnce(url, options.gatewayPort ?? 17802);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, userDir, child, stop };
}

if (require.main === module) {
  const port = Number(process.env.PORT ?? 1880);
  startDemo({ port }).then(
    (demo) => {
      console.log(`\nPeer mesh demo running: open ${demo.url} (Node-RED user dir: ${demo.userDir})`);
      console.log("Stop it with Ctrl+C.\n");
      const shutdown = (): void => void demo.stop().then(() => process.exit(0));
      process.once("SIGINT", shutdown);
      process.once("SIGTERM", shutdown);
    },
    (err: Error) => {
      console.error(`The demo could not start: ${err.message}`);
      process.exit(1);
    },
  );
}
