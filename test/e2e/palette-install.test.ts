import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import should from "should";
import { RunningDemo, startDemo } from "../../scripts/demo";
import { freePort } from "../nodes/fixtures";
import { Packed, packFromCleanCopy } from "../helpers/pack";

const projectRoot = path.resolve(__dirname, "..", "..", "..");
const OUR_TYPES = ["acl-check", "identity-config", "mesh-sync", "peer-discover", "peer-receive", "peer-reply", "peer-send"];

interface NodeSet {
  module: string;
  types: string[];
  enabled: boolean;
  loaded: boolean;
  err?: string;
}

/**
 * What a user does: the tarball `npm pack` makes, uploaded to a fresh Node-RED through the Admin API
 * (the Palette Manager's upload posts the same request), then a restart. Runs on whichever runtime the
 * suite runs on: Node-RED 4.1 on Node 20, and Node-RED 5 on Node 22 in the second pass.
 */
describe("palette: npm pack, installed into a fresh Node-RED through the Admin API", function () {
  this.timeout(300_000);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "peer-mesh-palette-"));
  const userDir = path.join(work, "user");
  let red: RunningDemo | undefined;
  const redJs = process.env.NODE_RED_RUNTIME ? path.join(path.dirname(process.env.NODE_RED_RUNTIME), "..", "red.js") : undefined;

  after(async () => {
    await red?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  async function ourNodeSets(url: string): Promise<NodeSet[]> {
    const sets = (await (await fetch(`${url}/nodes`, { headers: { accept: "application/json" } })).json()) as NodeSet[];
    return sets.filter((set) => set.module === "@peer-mesh/node-red-peer-mesh");
  }

  let packed: Packed;
  before(() => {
    // As a publish would: from sources with no dist/, so the package's prepack has to build it.
    packed = packFromCleanCopy(work);
  });

  it("packs from a fresh clone what Node-RED needs and nothing else: every node's code, editor file and locales, the plugin, the examples", () => {
    const files = packed.files;
    const nodes = fs.readdirSync(path.join(projectRoot, "nodes")).filter((name) => name !== "shared");
    for (const node of nodes) {
      should(files).containEql(`dist/nodes/${node}/${node}.js`).and.containEql(`dist/nodes/${node}/${node}.html`);
      for (const lang of ["en-US", "de"]) should(files).containEql(`dist/nodes/${node}/locales/${lang}/${node}.json`).and.containEql(`dist/nodes/${node}/locales/${lang}/${node}.html`);
    }
    should(files).containEql("dist/plugins/peer-mesh-sidebar/peer-mesh-sidebar.js").and.containEql("dist/plugins/peer-mesh-sidebar/peer-mesh-sidebar.html");
    should(files).containEql("dist/lib/index.js").and.containEql("dist/lib/index.d.ts");
    for (const example of fs.readdirSync(path.join(projectRoot, "examples"))) should(files).containEql(`examples/${example}`);
    should(files).containEql("LICENSE").and.containEql("README.md").and.containEql("CHANGELOG.md").and.containEql("package.json");
    const unwanted = files.filter((file) => /^(test|bench|scripts|\.demo|\.nr5|docs)\//.test(file) || /^dist\/(test|bench|scripts)\//.test(file) || file.endsWith(".map") || (file.endsWith(".ts") && !file.endsWith(".d.ts")));
    should(unwanted).eql([]);
  });

  it("uploads the tarball, which installs with its dependencies, and after a restart every node is in the palette", async () => {
    const tarball = packed.tarball;

    const port = await freePort();
    red = await startDemo({ userDir, port, stdio: "pipe", redJs, bare: true });
    should(await ourNodeSets(red.url)).eql([]);
    const form = new FormData();
    form.append("tarball", new Blob([fs.readFileSync(tarball)], { type: "application/gzip" }), path.basename(tarball));
    const installed = await fetch(`${red.url}/nodes`, { method: "POST", body: form });
    const answer = await installed.text();
    should(installed.status).equal(200, answer);
    const module = JSON.parse(answer) as { name: string; nodes: NodeSet[] };
    should(module.name).equal("@peer-mesh/node-red-peer-mesh");
    should(module.nodes.flatMap((set) => set.types).sort()).eql(OUR_TYPES);
    should(fs.existsSync(path.join(userDir, "node_modules", "pouchdb-node"))).be.true();

    await red.stop();
    red = await startDemo({ userDir, port, stdio: "pipe", redJs, bare: true });
    const sets = await ourNodeSets(red.url);
    should(sets.flatMap((set) => set.types).sort()).eql(OUR_TYPES);
    for (const set of sets) {
      should(set.enabled).be.true();
      should(set.err).be.undefined();
    }
    // The editor gets the nodes' help and labels in the palette's HTML.
    const html = await (await fetch(`${red.url}/nodes`, { headers: { accept: "text/html" } })).text();
    for (const type of OUR_TYPES) should(html).containEql(`data-help-name="${type}"`);
    // And the editor plugin (the peer mesh sidebar tab) came with it.
    const plugins = (await (await fetch(`${red.url}/plugins`, { headers: { accept: "application/json" } })).json()) as Array<{ plugins: Array<{ id: string }> }>;
    should(plugins.flatMap((set) => set.plugins.map((plugin) => plugin.id))).containEql("peer-mesh-sidebar");
  });
});
