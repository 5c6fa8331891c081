import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import type { Node } from "node-red";

const projectRoot = path.resolve(__dirname, "..", "..");

interface EmbeddedRed {
  init(server: http.Server, settings: Record<string, unknown>): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  nodes: { getNode(id: string): Node | null };
}

export interface EmbeddedNodeRed {
  getNode(id: string): Node;
  stop(): Promise<void>;
}

/**
 * A real Node-RED runtime in this process, with this package installed in its user directory. The
 * benchmark needs it rather than the test helper: the helper wraps every node method in a recording spy,
 * which would charge each path for how many runtime calls it makes rather than for its real cost.
 */
export async function startEmbeddedNodeRed(flows: Array<Record<string, unknown>>, credentials: Record<string, unknown>): Promise<EmbeddedNodeRed> {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-node-red-"));
  fs.mkdirSync(path.join(userDir, "node_modules", "@peer-mesh"), { recursive: true });
  fs.symlinkSync(projectRoot, path.join(userDir, "node_modules", "@peer-mesh", "node-red-peer-mesh"), "dir");
  fs.writeFileSync(path.join(userDir, "flows.json"), JSON.stringify(flows));
  fs.writeFileSync(path.join(userDir, "flows_cred.json"), JSON.stringify(credentials));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const RED = require("node-red") as EmbeddedRed;
  const server = http.createServer();
  RED.init(server, {
    userDir,
    flowFile: "flows.json",
    credentialSecret: false,
    httpAdminRoot: false,
    httpNodeRoot: false,
    telemetry: { enabled: false },
    diagnostics: { enabled: false },
    externalModules: { autoInstall: false },
    logging: { console: { level: "warn" } },
  });
  await RED.start();
  // start() resolves before the flows have started; wait for the last node of the flow to exist.
  const last = String(flows[flows.length - 1].id);
  const deadline = Date.now() + 20_000;
  while (!RED.nodes.getNode(last)) {
    if (Date.now() > deadline) throw new Error("the benchmark flows did not start (is the package built?)");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    getNode(id) {
      const node = RED.nodes.getNode(id);
      if (!node) throw new Error(`node ${id} did not start`);
      return node;
    },
    async stop() {
      await RED.stop();
      server.close();
      fs.rmSync(userDir, { recursive: true, force: true });
    },
  };
}

export type InputListener<T> = (msg: T) => void;

/**
 * Listens to the msgs a node receives; returns the detach. It detaches with removeListener, not off:
 * Node-RED keeps input listeners outside EventEmitter and overrides only removeListener, and
 * EventEmitter's off is bound to the original. A bench that detached with off left every earlier
 * round's listener running on each later msg (the floor's sink ran 11 of them by its last round).
 */
export function onInput<T>(node: Node, listener: InputListener<T>): () => void {
  const emitter = node as unknown as { on(event: "input", listener: InputListener<T>): void; removeListener(event: "input", listener: InputListener<T>): void };
  emitter.on("input", listener);
  return () => emitter.removeListener("input", listener);
}

/** Polls `condition` until it holds; throws naming `what` after `timeoutMs`. */
export async function until(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
