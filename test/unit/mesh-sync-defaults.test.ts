import fs from "node:fs";
import path from "node:path";
import should from "should";
import { lowPower, MESH_SYNC_DEFAULTS } from "../../lib";

const editor = path.resolve(__dirname, "..", "..", "..", "nodes", "mesh-sync", "mesh-sync.html");

describe("mesh-sync defaults", () => {
  it("the editor offers the library's defaults (its copy cannot import them)", () => {
    const html = fs.readFileSync(editor, "utf8");
    for (const [name, value] of Object.entries(MESH_SYNC_DEFAULTS)) {
      const shown = new RegExp(`\\b${name}: \\{ value: ([^,}]+)`).exec(html)?.[1]?.trim().replace(/^'(.*)'$/, "$1");
      should(shown).equal(String(value), `mesh-sync.html default of ${name}`);
    }
  });

  it("pauses on low power: a battery under the threshold unless charging or on mains, or power \"low\"", () => {
    should(lowPower({ battery: 19 }, 20)).be.true();
    should(lowPower({ battery: 20 }, 20)).be.false();
    should(lowPower({ battery: 5, power: "charging" }, 20)).be.false();
    should(lowPower({ battery: 5, power: "mains" }, 20)).be.false();
    should(lowPower({ power: "low" }, 20)).be.true();
    should(lowPower({ power: "battery" }, 20)).be.false();
    should(lowPower({ battery: 10 })).be.true(); // the default threshold, 20 %
  });
});
