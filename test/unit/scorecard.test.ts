import fs from "node:fs";
import path from "node:path";
import * as acorn from "acorn";
import * as walk from "acorn-walk";
import semver from "semver";
import should from "should";

/**
 * The offline half of the Flow Library scorecard (`node-red-dev validate` aborts without the network):
 * the package.json rules, examples for every node, the dependency budget, and editor files whose
 * registerType calls the Flow Library can read.
 */
const root = path.resolve(__dirname, "..", "..", "..");
const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as {
  name: string;
  license?: string;
  repository?: unknown;
  bugs?: unknown;
  keywords?: string[];
  engines?: { node?: string };
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  "node-red"?: { version?: string; nodes?: Record<string, string> };
};

/** Types in Node-RED's own palette and in well-known palette packages that ours must not shadow. */
const WELL_KNOWN_TYPES = ["discovery", "mdns", "bonjour", "ping", "serial in", "serial out", "serial request", "couchdb", "pouchdb", "cloudant in", "cloudant out", "ble", "ble in", "ble out", "ble-scanner", "noble", "bleno", "tor", "acl", "identity", "peer", "sync", "ui_button", "ui_switch", "ui_text", "ui_template", "dashboard", "email", "e-mail", "twitter in", "feedparse", "sentiment", "smooth", "random", "base64", "crypto-js", "exec-queue"];

function coreTypes(): string[] {
  const dir = path.dirname(require.resolve("@node-red/nodes/package.json"));
  const types = new Set<string>();
  const visit = (at: string): void => {
    for (const entry of fs.readdirSync(at, { withFileTypes: true })) {
      const full = path.join(at, entry.name);
      if (entry.isDirectory()) visit(full);
      else if (entry.name.endsWith(".html")) for (const match of fs.readFileSync(full, "utf8").matchAll(/registerType\(\s*['"]([^'"]+)['"]/g)) types.add(match[1]);
    }
  };
  visit(path.join(dir, "core"));
  return [...types];
}

interface Registration {
  type: string;
  properties: string[];
  category?: string;
}

/** Every RED.nodes.registerType('<type>', {…}) in an editor file, read the way the Flow Library does: as an inline literal. */
function registrations(html: string): Registration[] {
  const found: Registration[] = [];
  for (const [, script] of html.matchAll(/<script type="text\/javascript">([\s\S]*?)<\/script>/g)) {
    const program = acorn.parse(script, { ecmaVersion: "latest" });
    walk.simple(program, {
      CallExpression(node) {
        const callee = node.callee;
        if (callee.type !== "MemberExpression" || callee.property.type !== "Identifier" || callee.property.name !== "registerType") return;
        const [type, definition] = node.arguments;
        if (type?.type !== "Literal" || typeof type.value !== "string") throw new Error("registerType's first argument is not a string literal");
        if (definition?.type !== "ObjectExpression") throw new Error(`registerType('${type.value}') is not given an inline object literal`);
        const properties = definition.properties.flatMap((property) => (property.type === "Property" && property.key.type === "Identifier" ? [property] : []));
        const category = properties.find((property) => property.key.type === "Identifier" && property.key.name === "category");
        found.push({
          type: type.value,
          properties: properties.map((property) => (property.key as acorn.Identifier).name),
          category: category?.value.type === "Literal" ? String(category.value.value) : undefined,
        });
      },
    });
  }
  return found;
}

describe("Flow Library scorecard (offline checks)", () => {
  const nodes = pkg["node-red"]?.nodes ?? {};
  const editorFiles = Object.keys(nodes).map((type) => path.join(root, "nodes", type, `${type}.html`));

  it("has a licence, a repository or issue tracker, a scoped name and the node-red keyword", () => {
    should(pkg.license).be.a.String().and.not.empty();
    should(fs.existsSync(path.join(root, "LICENSE"))).be.true();
    should(Boolean(pkg.repository || pkg.bugs)).be.true();
    should(pkg.name).match(/^@[a-z0-9-~][a-z0-9-._~]*\/node-red-[a-z0-9-._~]+$/);
    should(pkg.keywords).containEql("node-red");
  });

  it("declares a Node-RED version that 4.1 and 5.0 satisfy, and a Node.js range that admits 20 and 22.9", () => {
    const range = pkg["node-red"]?.version ?? "";
    for (const version of ["4.1.0", "5.0.0"]) should(semver.satisfies(version, range)).be.true(`node-red.version "${range}" excludes ${version}`);
    for (const version of ["20.19.0", "22.9.0"]) should(semver.satisfies(version, pkg.engines?.node ?? "")).be.true(`engines.node excludes ${version}`);
  });

  it("keeps to at most 6 dependencies (D01 counts `dependencies`; the optional BLE packages and koffi, the memory trimmer's FFI, are not installed where they cannot build)", () => {
    should(Object.keys(pkg.dependencies ?? {}).length).be.belowOrEqual(6);
    should(Object.keys(pkg.optionalDependencies ?? {})).eql(["@abandonware/bleno", "@abandonware/noble", "koffi"]);
  });

  it("uses every node that is not a config node in at least one example flow", () => {
    const examples = fs.readdirSync(path.join(root, "examples")).filter((file) => file.endsWith(".json"));
    should(examples.length).be.aboveOrEqual(2);
    const used = new Set(examples.flatMap((file) => (JSON.parse(fs.readFileSync(path.join(root, "examples", file), "utf8")) as Array<{ type: string }>).map((node) => node.type)));
    const flowNodes = editorFiles.flatMap((file) => registrations(fs.readFileSync(file, "utf8"))).filter((registration) => registration.category !== "config");
    should(flowNodes.length).equal(Object.keys(nodes).length - 1);
    should(flowNodes.map((registration) => registration.type).filter((type) => !used.has(type))).eql([]);
  });

  it("registers each node in its editor file with an inline literal that has a category and defaults", () => {
    for (const [type] of Object.entries(nodes)) {
      const found = registrations(fs.readFileSync(path.join(root, "nodes", type, `${type}.html`), "utf8"));
      should(found.map((registration) => registration.type)).eql([type]);
      should(found[0].properties).containEql("category").and.containEql("defaults");
      if (found[0].category !== "config") should(found[0].category).equal("peer mesh");
    }
  });

  it("names no node type that Node-RED's core or a well-known palette package already uses", () => {
    const taken = new Set([...coreTypes(), ...WELL_KNOWN_TYPES]);
    should(taken.has("inject") && taken.has("mqtt in")).be.true(); // the core list was read
    should(Object.keys(nodes).filter((type) => taken.has(type))).eql([]);
  });

  it("finds a built file for every node listed in package.json", () => {
    for (const file of Object.values(nodes)) should(fs.existsSync(path.join(root, file))).be.true(`${file} is missing (npm run build)`);
  });
});
