import { execFile, execFileSync } from "node:child_process";
import path from "node:path";
import should from "should";

/**
 * The device's own process under valgrind's memcheck, for the native faults no JS test can see: a read
 * or write of freed memory corrupts the heap without failing anything until glibc aborts the process
 * later, somewhere else ("corrupted size vs. prev_size"). Here: requests crossing the idle close of
 * their connection, and requests a peer sends after its own GOAWAY, the two ways in which Node 20 freed
 * an nghttp2 stream under nghttp2 (README, "Storage across deploys and restarts"). Skipped where
 * valgrind is not installed.
 */
describe("native heap under valgrind", function () {
  this.timeout(240_000);
  const valgrind = (() => {
    try {
      execFileSync("valgrind", ["--version"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  })();

  it("requests crossing the idle close of their connection, or sent after the peer's GOAWAY, touch no freed memory", async function () {
    if (!valgrind) return this.skip(); // apt-get install valgrind (.ci/run does)
    const program = path.join(__dirname, "..", "helpers", "crossing-main.js");
    const { stdout, stderr } = await new Promise<{ stdout: string; stderr: string }>((resolve, reject) => {
      execFile("valgrind", ["--undef-value-errors=no", "--error-limit=no", "--num-callers=24", process.execPath, program, "3"], { maxBuffer: 64 * 1024 * 1024, timeout: 220_000 }, (err, out, errOut) => {
        if (err && !errOut.includes("ERROR SUMMARY")) reject(new Error(`${err.message}\n${errOut.slice(-4000)}`));
        else resolve({ stdout: out, stderr: errOut });
      });
    });
    should(stdout).match(/crossing requests done/);
    const summary = /ERROR SUMMARY: (\d+) errors/.exec(stderr);
    should.exist(summary, "valgrind printed no summary");
    const invalid = stderr.split("\n").filter((line) => /Invalid (read|write|free)|inside a block of size/.test(line));
    should(Number(summary![1])).equal(0, `memcheck found ${summary![1]} errors:\n${invalid.slice(0, 20).join("\n")}`);
  });
});
