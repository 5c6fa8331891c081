import should from "should";
import fs from "node:fs";
import path from "node:path";

const nodesDir = path.resolve(__dirname, "..", "..", "nodes");
const sharedJs = fs.readFileSync(path.join(nodesDir, "shared", "identity-node.js"), "utf8");

function has(catalog: unknown, key: string): boolean {
  return typeof key.split(".").reduce<unknown>((at, part) => (at && typeof at === "object" ? (at as Record<string, unknown>)[part] : undefined), catalog) === "string";
}

function keysUsed(source: string): string[] {
  const patterns = [/RED\._\(\s*"([^"]+)"/g, /\b_\(\s*'([^']+)'/g, /data-i18n="(?:\[[a-z]+\])?([^"]+)"/g];
  return patterns.flatMap((pattern) => [...source.matchAll(pattern)].map((match) => match[1]));
}

/** Every dotted key path of a catalog whose value is a string. */
function leafKeys(catalog: unknown, prefix = ""): string[] {
  if (typeof catalog !== "object" || catalog === null) return [prefix];
  return Object.entries(catalog).flatMap(([key, value]) => leafKeys(value, prefix ? `${prefix}.${key}` : key));
}

/** The __placeholders__ of a message: a translation must keep them all. */
const placeholders = (text: string): string[] => [...text.matchAll(/__([a-zA-Z]+)__/g)].map((match) => match[1]).sort();

describe("locales", () => {
  const nodeNames = fs.readdirSync(nodesDir).filter((name) => name !== "shared" && fs.existsSync(path.join(nodesDir, name, `${name}.html`)));

  it("finds the built nodes", () => {
    should(nodeNames.sort()).eql(["acl-check", "identity-config", "mesh-sync", "peer-discover", "peer-receive", "peer-reply", "peer-send"]);
  });

  for (const name of ["acl-check", "identity-config", "mesh-sync", "peer-discover", "peer-receive", "peer-reply", "peer-send"]) {
    it(`${name}: every message key its runtime and editor use has en-US words, and help exists`, () => {
      const dir = path.join(nodesDir, name);
      const catalog = JSON.parse(fs.readFileSync(path.join(dir, "locales", "en-US", `${name}.json`), "utf8"));
      const used = [...keysUsed(fs.readFileSync(path.join(dir, `${name}.js`), "utf8")), ...keysUsed(fs.readFileSync(path.join(dir, `${name}.html`), "utf8")), ...keysUsed(sharedJs)];
      should(used.length).be.above(3);
      const missing = [...new Set(used)].filter((key) => !has(catalog, key));
      should(missing).eql([]);
      const help = fs.readFileSync(path.join(dir, "locales", "en-US", `${name}.html`), "utf8");
      should(help).match(new RegExp(`data-help-name="${name}"`));
    });
  }

  for (const name of ["acl-check", "identity-config", "mesh-sync", "peer-discover", "peer-receive", "peer-reply", "peer-send"]) {
    it(`${name}: the German catalog has every en-US key with the same placeholders, and German help`, () => {
      const dir = path.join(nodesDir, name, "locales");
      const english = JSON.parse(fs.readFileSync(path.join(dir, "en-US", `${name}.json`), "utf8"));
      const german = JSON.parse(fs.readFileSync(path.join(dir, "de", `${name}.json`), "utf8"));
      should(leafKeys(german).sort()).eql(leafKeys(english).sort());
      const at = (catalog: unknown, key: string): string => key.split(".").reduce<unknown>((value, part) => (value as Record<string, unknown>)[part], catalog) as string;
      for (const key of leafKeys(english)) should(placeholders(at(german, key))).eql(placeholders(at(english, key)), key);
      const help = fs.readFileSync(path.join(dir, "de", `${name}.html`), "utf8");
      should(help).match(new RegExp(`data-help-name="${name}"`)).and.match(/<h3>/);
    });
  }
});
