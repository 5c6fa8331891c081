import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

const projectRoot = path.resolve(__dirname, "..", "..", "..");
/** What a fresh clone does not have: built output, installs and local state. */
const NOT_IN_A_CLONE = new Set(["node_modules", "dist", ".demo", ".nr5", ".git", "test-results"]);

export interface Packed {
  tarball: string;
  files: string[];
}

/**
 * `npm pack` as a publish would run it: in a copy of the sources with no dist/ (as a fresh clone after
 * `npm install`), so the package's own lifecycle (prepack) has to build what goes in. The copy borrows
 * this project's node_modules, which a fresh clone would have after `npm install`.
 */
export function packFromCleanCopy(work: string): Packed {
  const copy = path.join(work, "clean-copy");
  fs.cpSync(projectRoot, copy, {
    recursive: true,
    filter: (source) => {
      const relative = path.relative(projectRoot, source);
      return !NOT_IN_A_CLONE.has(relative.split(path.sep)[0]) && !relative.endsWith(".tgz");
    },
  });
  assertAbsent(path.join(copy, "dist"));
  fs.symlinkSync(path.join(projectRoot, "node_modules"), path.join(copy, "node_modules"), "dir");
  const [packed] = JSON.parse(execFileSync("npm", ["pack", "--json", "--pack-destination", work], { cwd: copy, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })) as Array<{ filename: string; files: Array<{ path: string }> }>;
  return { tarball: path.join(work, packed.filename.replace(/^@/, "").replace("/", "-")), files: packed.files.map((file) => file.path) };
}

function assertAbsent(dir: string): void {
  if (fs.existsSync(dir)) throw new Error(`${dir} exists in what should be a fresh clone`);
}
