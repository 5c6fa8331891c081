import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

/**
 * Runs the suite again on Node-RED 5 under Node 22 (the npm package node@22 ships the binary), installed
 * into .nr5/ beside the project, so one `npm test` covers both supported runtimes.
 *
 * All of it but the library's network-fault suites (test hosts in namespaces, the private Tor network):
 * they never load Node-RED, take a third of a pass, and would put the whole suite over the half hour
 * CI allows on two cores. They run on Node 22 with `npm run repeat -- --node .nr5/node_modules/.bin/node`
 * (and Tor between two Node-RED 5 processes stays in this pass).
 */
const root = path.resolve(__dirname, "..", "..");
const dir = path.join(root, ".nr5");
const wanted = { node: "22", "node-red": "5" };

function installed(name: string): string | undefined {
  try {
    return (JSON.parse(fs.readFileSync(path.join(dir, "node_modules", name, "package.json"), "utf8")) as { version: string }).version;
  } catch {
    return undefined;
  }
}

fs.mkdirSync(dir, { recursive: true });
if (!fs.existsSync(path.join(dir, "package.json"))) fs.writeFileSync(path.join(dir, "package.json"), '{ "private": true }\n');
if (!installed("node")?.startsWith(`${wanted.node}.`) || !installed("node-red")?.startsWith(`${wanted["node-red"]}.`)) {
  console.log("Installing Node 22 and Node-RED 5 into .nr5/ …");
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  execFileSync(npm, ["install", "--no-audit", "--no-fund", "--loglevel=error", `node@${wanted.node}`, `node-red@${wanted["node-red"]}`], { cwd: dir, stdio: "inherit" });
}
const node22 = path.join(dir, "node_modules", ".bin", "node");
const runtime = require.resolve("node-red", { paths: [dir] });
const nodeVersion = execFileSync(node22, ["--version"]).toString().trim();
console.log(`\nThe suite on Node-RED ${installed("node-red")} with Node ${nodeVersion}:`);
// mocha adds --spec to the config's list: this pass gets a config of its own instead.
const mocharc = JSON.parse(fs.readFileSync(path.join(root, ".mocharc.json"), "utf8")) as { spec: string[] };
const LIBRARY_ONLY_NETWORK_SUITES = ["dist/test/netns/*.test.js", "dist/test/tor/*.test.js"];
const config = path.join(dir, "mocharc.json");
fs.writeFileSync(config, JSON.stringify({ ...mocharc, spec: mocharc.spec.filter((pattern) => !LIBRARY_ONLY_NETWORK_SUITES.includes(pattern)) }, null, 2));
console.log(`(without ${LIBRARY_ONLY_NETWORK_SUITES.join(" and ")}: see scripts/test-node-red-5.ts)`);
const result = spawnSync(node22, [require.resolve("mocha/bin/mocha.js"), "--config", config], {
  cwd: root,
  stdio: "inherit",
  env: { ...process.env, NODE_RED_RUNTIME: runtime },
});
process.exit(result.status ?? 1);
