import { execFileSync } from "node:child_process";
import path from "node:path";
import should from "should";
import { newMessageId } from "../../lib";
import { MAX_MESSAGE_ID_CHARS } from "../../lib/protocol/wire";

describe("newMessageId", () => {
  it("gives 200,000 distinct ids in a row, each one a valid wire id (printable ASCII, no spaces, within the limit)", () => {
    const ids = new Set<string>();
    for (let i = 0; i < 200_000; i++) ids.add(newMessageId());
    should(ids.size).equal(200_000);
    for (const id of [...ids].slice(-3)) {
      should(id).match(/^[\x21-\x7e]+$/);
      should(id.length).be.belowOrEqual(MAX_MESSAGE_ID_CHARS);
    }
  });

  it("gives another process ids that share nothing with this one's (a restarted sender cannot repeat an id)", () => {
    const module = path.join(__dirname, "..", "..", "lib", "wire", "message-ids.js");
    const program = `const { newMessageId } = require(${JSON.stringify(module)}); console.log([newMessageId(), newMessageId()].join(" "))`;
    const [first, second] = execFileSync(process.execPath, ["-e", program]).toString().trim().split(" ");
    const here = newMessageId();
    const prefixOf = (id: string): string => id.slice(0, id.lastIndexOf("-"));
    should(prefixOf(first)).equal(prefixOf(second));
    should(prefixOf(first)).not.equal(prefixOf(here));
    should([first, second]).not.containEql(here);
  });
});
