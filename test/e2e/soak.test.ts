import { execFile } from "node:child_process";
import path from "node:path";
import should from "should";
import type { SoakReport } from "../../scripts/soak";

const SECONDS = Number(process.env.SOAK_SECONDS ?? 60);
/** The stated bound for three devices, their databases and this load (README, Limits). */
const RSS_BOUND_MB = 400;

/**
 * The 1-minute version of `npm run soak` (10 minutes there), in a process of its own so that its memory
 * figures are its own. The library under test is the same on both runtimes, so the Node-RED 5 pass skips it.
 */
describe(`soak: ${SECONDS} s of messages, streams and store-and-forward on loopback`, function () {
  this.timeout((SECONDS + 120) * 1000);

  before(function () {
    if (process.env.NODE_RED_RUNTIME) {
      console.log("      skipped on the Node-RED 5 pass: the soak exercises the library, which the first pass ran");
      this.skip();
    }
  });

  /** Runs the soak script in a process of its own and returns its report. */
  async function runSoak(seconds: number, ...extra: string[]): Promise<SoakReport> {
    const script = path.resolve(__dirname, "..", "..", "scripts", "soak.js");
    const output = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, [script, "--seconds", String(seconds), ...extra], { timeout: (seconds + 90) * 1000 }, (err, stdout, stderr) => {
        if (err && !stdout.includes('"rssMb"')) reject(new Error(`${err.message}\n${stderr}`));
        else resolve(stdout);
      });
    });
    const lines = output.trim().split("\n");
    for (const line of lines.slice(0, -1)) console.log(`      ${line}`);
    return JSON.parse(lines[lines.length - 1]) as SoakReport;
  }

  it("loses nothing, duplicates nothing, and keeps memory bounded", async () => {
    const report = await runSoak(SECONDS);
    for (const kind of ["messages", "streams", "mesh"] as const) {
      should(report[kind].sent).be.above(0, `${kind} were sent`);
      should(report[kind]).containEql({ lost: 0, duplicated: 0, failed: 0 });
    }
    should(Math.max(...report.rssMb.map((sample) => sample.mb))).be.below(RSS_BOUND_MB);
  });

  it("leaves out the loads it is told to (to tell which one memory follows)", async () => {
    const report = await runSoak(3, "--without", "streams,mesh");
    should(report.messages.sent).be.above(0);
    should(report.messages).containEql({ lost: 0, duplicated: 0, failed: 0 });
    should(report.streams.sent).equal(0);
    should(report.mesh.sent).equal(0);
  });
});
