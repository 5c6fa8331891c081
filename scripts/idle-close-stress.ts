/**
 * npm run stress:idle-close: the native heap corruption behind "corrupted size vs. prev_size", looped
 * until it crashes or the rounds run out (README, "Storage across deploys and restarts").
 *
 *   node dist/scripts/idle-close-stress.js [--rounds 2000] [--node-only close|goaway|peer-goaway|peer-goaway-ended]
 *
 * Each round sends a request that reaches a server in the same turn of its event loop as the idle
 * timeout of the connection it travels on. By default the server is a Device (this project's wire
 * listener); with --node-only, a bare node:http2 server that ends idle sessions with session.close()
 * (what the device did before 0.2.0's fix, and what crashes on Node 20) or with a GOAWAY alone (what
 * it does now). peer-goaway: the client sends GOAWAY and a request in one write instead, and the bare
 * server leaves the session to Node (which closes it: crashes on Node 20); peer-goaway-ended: the server
 * destroys the session in its goaway event, as the device now does. A crash ends the process with
 * glibc's message; otherwise it prints the rounds it ran.
 */
import http2 from "node:http2";
import net from "node:net";
import { crossRounds } from "../test/helpers/crossing-main";
import { http2Frame } from "../test/helpers/raw-client";

function option(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  return at >= 0 ? process.argv[at + 1] : undefined;
}

type NodeOnlyMode = "close" | "goaway" | "peer-goaway" | "peer-goaway-ended";

/** A bare node:http2 server (cleartext, so nothing but HTTP/2 is involved) and a hand-written client. */
async function nodeOnly(rounds: number, mode: NodeOnlyMode): Promise<void> {
  const getRoot = Buffer.concat([Buffer.from([0x82, 0x86, 0x84, 0x41, 9]), Buffer.from("127.0.0.1")]);
  const server = http2.createServer();
  server.on("stream", (stream) => stream.on("error", () => undefined).respond({ ":status": 200 }, { endStream: true }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  for (let round = 0; round < rounds; round++) {
    await new Promise<void>((resolve) => {
      const client = net.connect(port, "127.0.0.1", () => client.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), http2Frame(4, 0, 0)])));
      client.on("error", () => undefined);
      client.on("close", () => resolve());
      server.once("session", (session) => {
        session.on("error", () => undefined);
        if (mode === "peer-goaway-ended") session.once("goaway", () => session.destroy());
        if (mode === "peer-goaway" || mode === "peer-goaway-ended") {
          // GOAWAY (last stream 0, no error) and then a new request, in one write.
          setTimeout(() => client.write(Buffer.concat([http2Frame(1, 0x5, 1, getRoot), http2Frame(7, 0, 0, Buffer.alloc(8)), http2Frame(1, 0x5, 3, getRoot)])), 2);
          setTimeout(() => client.destroy(), 15);
          return;
        }
        session.setTimeout(5, () => {
          client.write(http2Frame(1, 0x5, 1, getRoot)); // the next request, already on its way
          if (mode === "close") session.close();
          else session.goaway(http2.constants.NGHTTP2_NO_ERROR);
          setTimeout(() => {
            session.destroy();
            client.destroy();
          }, 10);
        });
      });
    });
  }
  server.close();
}

const rounds = Number(option("--rounds") ?? 2000);
const mode = option("--node-only") as NodeOnlyMode | undefined;
if (mode && !["close", "goaway", "peer-goaway", "peer-goaway-ended"].includes(mode)) throw new Error(`--node-only takes close, goaway, peer-goaway or peer-goaway-ended, not ${mode}`);
const started = Date.now();
(mode ? nodeOnly(rounds, mode) : crossRounds(rounds, 20, "idle")).then(
  () => console.log(`${rounds} rounds (${mode ? `node:http2, ${mode}` : "a device"}) on Node ${process.version} in ${Math.round((Date.now() - started) / 1000)} s: no crash`),
  (err: Error) => {
    console.error(err);
    process.exit(1);
  },
);
