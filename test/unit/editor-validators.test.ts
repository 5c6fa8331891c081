import fs from "node:fs";
import path from "node:path";
import vm from "node:vm";
import should from "should";

const nodesDir = path.resolve(__dirname, "..", "..", "..", "nodes");

interface Definition {
  defaults: Record<string, { value: unknown; validate?: (this: Record<string, unknown>, value: unknown) => boolean }>;
}

/** Runs a node's editor script against a stand-in RED that keeps what registerType is given. */
function editorDefinition(type: string): Definition {
  const html = fs.readFileSync(path.join(nodesDir, type, `${type}.html`), "utf8");
  const script = /<script type="text\/javascript">([\s\S]*?)<\/script>/.exec(html)?.[1];
  if (!script) throw new Error(`${type}.html has no editor script`);
  let definition: Definition | undefined;
  const RED = {
    nodes: { registerType: (_name: string, def: Definition) => (definition = def) },
    validators: {
      number: () => (value: unknown) => value === "" || value === undefined || !Number.isNaN(Number(value)),
      regex: (pattern: RegExp) => (value: unknown) => pattern.test(String(value ?? "")),
    },
  };
  vm.runInNewContext(script, { RED, $: () => ({}) });
  if (!definition) throw new Error(`${type}.html registers no node`);
  return definition;
}

/**
 * An editor validator that fails a node makes Node-RED ask before every deploy, and an imported example
 * never deploys unattended: a setting added later must accept its default and its absence (a flow saved
 * before the setting existed has none). The browser test caught the mesh sync node's "keep here"
 * settings failing this; this catches it without a browser.
 */
describe("editor validators", () => {
  for (const type of fs.readdirSync(nodesDir).filter((name) => fs.existsSync(path.join(nodesDir, name, `${name}.html`)))) {
    it(`${type}: every setting's default, and a flow saved before an optional setting existed, pass`, () => {
      const { defaults } = editorDefinition(type);
      const withDefaults = Object.fromEntries(Object.entries(defaults).map(([name, { value }]) => [name, value]));
      for (const [name, { value, validate }] of Object.entries(defaults)) {
        if (!validate) continue;
        if (defaults[name].value === "" && name === "identity") continue;
        should(validate.call(withDefaults, value)).be.true(`${type}.${name} refuses its default ${JSON.stringify(value)}`);
        // An optional setting (off when empty) is the kind added in a later release without a migration.
        if (value !== "" && value !== false) continue;
        const older: Record<string, unknown> = { ...withDefaults };
        delete older[name];
        should(validate.call(older, undefined)).be.true(`${type}.${name} refuses a node saved without it`);
      }
    });
  }
});
