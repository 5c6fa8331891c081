import fs from "node:fs";
import path from "node:path";
import should from "should";

const libDir = path.resolve(__dirname, "..", "..", "..", "lib");

/**
 * lib's folders from the bottom up. A module imports from its own layer or below, never above: the wire
 * does not know the ACL, the ACL does not know the wire, and only the Device (the top) knows them all.
 */
const LAYERS: string[][] = [
  ["protocol"],
  ["identity"],
  ["storage", "streams"],
  ["acl"],
  ["wire"],
  ["discovery"],
  ["ble", "tor"],
  ["replication"],
  ["mesh"],
  [".", "device"], // index.ts and the Device with its parts
];

function layerOf(file: string): number {
  const folder = path.relative(libDir, path.dirname(file)).split(path.sep)[0] || ".";
  const layer = LAYERS.findIndex((names) => names.includes(folder));
  if (layer < 0) throw new Error(`lib/${folder} is in no layer of this test: add it where it belongs`);
  return layer;
}

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sources(full);
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts") ? [full] : [];
  });
}

/** Relative imports of a source file, resolved to files ("./x" → x.ts or x/index.ts). */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, "utf8");
  const found: string[] = [];
  for (const match of text.matchAll(/(?:from|import)\s+"(\.{1,2}\/[^"]+)"/g)) {
    const target = path.resolve(path.dirname(file), match[1]);
    found.push(fs.existsSync(`${target}.ts`) ? `${target}.ts` : path.join(target, "index.ts"));
  }
  return found;
}

describe("lib's layers", () => {
  it("imports run downward only: protocol ← identity ← storage ← acl ← wire ← discovery ← transports ← replication ← mesh ← device", () => {
    const upward: string[] = [];
    for (const file of sources(libDir)) {
      for (const target of importsOf(file)) {
        if (layerOf(target) > layerOf(file)) upward.push(`${path.relative(libDir, file)} imports ${path.relative(libDir, target)}`);
      }
    }
    should(upward).eql([]);
  });

  it("knows every folder of lib (a new folder must be given its layer)", () => {
    for (const entry of fs.readdirSync(libDir, { withFileTypes: true })) {
      if (entry.isDirectory()) should(() => layerOf(path.join(libDir, entry.name, "x.ts"))).not.throw();
    }
  });
});
