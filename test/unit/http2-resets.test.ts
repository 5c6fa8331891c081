import { promises as fs } from "node:fs";
import path from "node:path";
import should from "should";

/**
 * Every reset of an HTTP/2 stream goes through resetStream or destroyStream (lib/wire/http2-io.ts), a
 * turn after the event that asked for it. On Node 20 a reset made inside nghttp2's read of the
 * connection can free a stream nghttp2 still reads, and the heap corruption aborts the whole process
 * later (test/integration/native-heap.test.ts shows it). This keeps a direct reset from coming back.
 */
describe("HTTP/2 resets", () => {
  const libRoot = path.join(__dirname, "..", "..", "..", "lib");
  /** stream.close(…), stream.destroy(…), request.destroy(…) and the like, on the names this code gives HTTP/2 streams. */
  const DIRECT_RESET = /\b(stream|request|response|channel\.stream|this\.stream|open\.stream)\.(close|destroy)\(|\.close\((http2\.)?constants\./;

  async function sources(dir: string): Promise<string[]> {
    const entries = await fs.readdir(dir, { withFileTypes: true });
    const nested = await Promise.all(entries.map((entry) => (entry.isDirectory() ? sources(path.join(dir, entry.name)) : Promise.resolve(entry.name.endsWith(".ts") ? [path.join(dir, entry.name)] : []))));
    return nested.flat();
  }

  it("no module but http2-io resets an HTTP/2 stream directly", async () => {
    // BLE's streams are GATT pipes; a line for an HTTP/1.1 request says so ("// HTTP/1.1").
    const exempt = new Set(["wire/http2-io.ts", "ble/ble-transport.ts"]);
    const files = (await sources(libRoot)).filter((file) => !exempt.has(path.relative(libRoot, file).split(path.sep).join("/")));
    should(files.length).be.above(50);
    const found: string[] = [];
    for (const file of files) {
      const lines = (await fs.readFile(file, "utf8")).split("\n");
      lines.forEach((line, i) => {
        if (DIRECT_RESET.test(line) && !line.includes("// HTTP/1.1")) found.push(`${path.relative(libRoot, file)}:${i + 1}: ${line.trim()}`);
      });
    }
    should(found).eql([], `direct resets (use resetStream or destroyStream):\n${found.join("\n")}`);
  });
});
