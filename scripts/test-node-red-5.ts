import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

/**
 * Runs the whole suite again on Node-RED 5 under Node 22 (the npm package node@22 ships the binary),
 * installed into .nr5/ beside the project, so one `npm test` covers both supported runtimes.
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
const result = spawnSync(node22, [require.resolve("mocha/bin/mocha.js")], {
  cwd: root,
  stdio: "inherit",
  env: { ...process.env, NODE_RED_RUNTIME: runtime },
});
process.exit(result.status ?? 1);
