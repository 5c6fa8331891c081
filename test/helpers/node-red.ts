import helper from "node-red-node-test-helper";
import path from "node:path";
import { TempDirs } from "./storage";

/**
 * The Node-RED runtime under test: the devDependency by default, or the one NODE_RED_RUNTIME points at
 * (how the suite runs against Node-RED 5 on Node 22).
 */
helper.init(process.env.NODE_RED_RUNTIME ?? require.resolve("node-red"));

export { helper };

const dist = path.resolve(__dirname, "..", "..", "nodes");
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const identityConfig = require(path.join(dist, "identity-config", "identity-config.js"));
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const peerSend = require(path.join(dist, "peer-send", "peer-send.js"));
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const peerReceive = require(path.join(dist, "peer-receive", "peer-receive.js"));
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const peerReply = require(path.join(dist, "peer-reply", "peer-reply.js"));
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const peerDiscover = require(path.join(dist, "peer-discover", "peer-discover.js"));
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const aclCheck = require(path.join(dist, "acl-check", "acl-check.js"));
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const meshSync = require(path.join(dist, "mesh-sync", "mesh-sync.js"));
/** Node-RED's hook registry of the runtime under test (the one its flows call for every msg). */
export function runtimeHooks(): RuntimeHooks {
  const runtime = process.env.NODE_RED_RUNTIME ?? require.resolve("node-red");
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require(require.resolve("@node-red/util", { paths: [path.dirname(runtime)] })) as { hooks: RuntimeHooks }).hooks;
}

export interface RuntimeHooks {
  add(id: string, handler: (event: never) => unknown): void;
  remove(id: string): void;
  has(id: string): boolean;
}

/** The node modules, given a RED that has hooks as a real runtime's has (the test helper's has none). */
export function withHooks(modules: unknown[], hooks: RuntimeHooks): unknown[] {
  return modules.map((module) => (red: object) => (module as (red: object) => unknown)(Object.assign(Object.create(red) as object, { hooks })));
}

export const allNodes = [identityConfig, peerSend, peerReceive, peerReply, peerDiscover, aclCheck, meshSync];

/** helper.load with flows typed as plain objects (the helper's typings know only the common NodeDef fields). */
export function loadFlow(nodes: unknown, flow: Array<Record<string, unknown>>, credentials: Record<string, unknown> = {}): Promise<void> {
  return helper.load(nodes as never, flow as never, credentials as never) as unknown as Promise<void>;
}

/** Mocha hooks for a suite of node tests: the helper's server around the suite, a fresh flow per test. */
export function useNodeRedHelper(): void {
  before(async () => {
    await helper.startServer();
  });
  after(async () => {
    await helper.stopServer();
  });
  afterEach(async () => {
    await helper.unload();
  });
}

/**
 * Gives each test of the suite a fresh Node-RED user directory, as a real runtime has: identities keep
 * their databases and mesh store under it. Removed after each test.
 */
export function useUserDir(): void {
  const dirs = new TempDirs();
  const settings = (helper as unknown as { settings(update?: object): object }).settings.bind(helper);
  let before: object;
  beforeEach(() => {
    before = settings();
    settings({ userDir: dirs.make("peer-mesh-userdir-") });
  });
  afterEach(() => {
    settings({ ...before, userDir: undefined });
    dirs.removeAll();
  });
}
