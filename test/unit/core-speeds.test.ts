import should from "should";
import { spawnSync } from "node:child_process";
import os from "node:os";
import { coreSpeeds, coreSpread, describeCores } from "../../bench/core-speeds";

describe("the bench's CPU speed check", () => {
  it("times the same loop on each CPU, pinned", function () {
    if (process.platform !== "linux" || spawnSync("taskset", ["--version"]).status !== 0) this.skip();
    this.timeout(30_000);
    const times = coreSpeeds(Math.min(2, os.cpus().length));
    should(times).be.an.Array();
    should(times).have.length(Math.min(2, os.cpus().length));
    for (const ms of times ?? []) should(ms).be.above(0);
  });

  it("calls CPUs uneven past 15 %, and says by how much", () => {
    should(coreSpread([400, 460])).be.approximately(1.15, 0.001);
    should(describeCores([400, 440])).not.match(/uneven/);
    should(describeCores([395, 530])).match(/uneven \(1\.34x\)/);
    should(describeCores([395, 530])).match(/^the same loop on each CPU: 395 ms \/ 530 ms/);
    should(describeCores(undefined)).match(/not measured/);
  });
});
