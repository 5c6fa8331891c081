/**
 * A bare node:http2 server that ends two streams from inside nghttp2's read of one of them: a new
 * request S arrives while a request T is open, and S's handler resets S, then T. "direct" calls
 * stream.close() as any code would; "deferred" goes through resetStream (lib/wire/http2-io.ts), as every
 * reset of this package does. The program test/integration/native-heap.test.ts runs under valgrind.
 */
import http2 from "node:http2";
import { once } from "node:events";
import { resetStream } from "../../lib/wire/http2-io";

export async function resetsInRead(mode: "direct" | "deferred", rounds: number): Promise<number> {
  const server = http2.createServer();
  let open: http2.ServerHttp2Stream | undefined;
  let opened: () => void = () => undefined;
  server.on("stream", (stream, headers) => {
    stream.on("error", () => undefined);
    if (headers[":path"] === "/open") {
      open = stream;
      opened();
      return;
    }
    const reset = mode === "direct" ? (target: http2.ServerHttp2Stream, code: number) => target.close(code) : resetStream;
    reset(stream, http2.constants.NGHTTP2_REFUSED_STREAM);
    if (open) reset(open, http2.constants.NGHTTP2_INTERNAL_ERROR);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  let refused = 0;
  try {
    for (let round = 0; round < rounds; round++) {
      const session = http2.connect(`http://127.0.0.1:${port}`);
      session.on("error", () => undefined);
      await once(session, "connect");
      // The server must hold T open before S arrives (under valgrind a fixed pause may not be enough).
      const serverHoldsIt = new Promise<void>((resolve) => (opened = resolve));
      const held = session.request({ ":method": "POST", ":path": "/open" });
      held.on("error", () => undefined);
      held.write("x");
      await serverHoldsIt;
      const request = session.request({ ":path": "/refused" });
      request.on("error", () => undefined);
      request.resume();
      await new Promise((resolve) => request.once("close", resolve));
      if (request.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) refused++;
      session.destroy();
    }
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
  return refused;
}

if (require.main === module) {
  const mode = process.argv[2] === "direct" ? "direct" : "deferred";
  resetsInRead(mode, Number(process.argv[3] ?? 3)).then(
    (refused) => console.log(`resets done: ${refused} refused`),
    (err: Error) => {
      console.error(err);
      process.exit(1);
    },
  );
}
