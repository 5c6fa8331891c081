/**
 * npm run stress:idle-close: the native heap corruption behind "corrupted size vs. prev_size", looped
 * until it crashes or the rounds run out (README, "Storage across deploys and restarts").
 *
 *   node dist/scripts/idle-close-stress.js [--rounds 2000] [--node-only close|goaway]
 *
 * Each round sends a request that reaches a server in the same turn of its event loop as the idle
 * timeout of the connection it travels on. By default the server is a Device (this project's wire
 * listener); with --node-only, a bare node:http2 server that ends idle sessions with session.close()
 * (what the device did before 0.2.0's fix, and what crashes on Node 20) or with a GOAWAY alone (what
 * it does now). A crash ends the process with glibc's message; otherwise it prints the rounds it ran.
 */
import http2 from "node:http2";
import net from "node:net";
import { Device, Identity } from "../lib";
import { requestCrossingIdleClose } from "../test/helpers/crossing-request";
import { http2Frame } from "../test/helpers/raw-client";

function option(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  return at >= 0 ? process.argv[at + 1] : undefined;
}

/** A bare node:http2 server (cleartext, so nothing but HTTP/2 is involved) and a hand-written client. */
async function nodeOnly(rounds: number, close: "close" | "goaway"): Promise<void> {
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
        session.setTimeout(5, () => {
          client.write(http2Frame(1, 0x5, 1, getRoot)); // the next request, already on its way
          if (close === "close") session.close();
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

async function device(rounds: number): Promise<void> {
  const peer = Identity.generate();
  const target = new Device({ identity: Identity.generate(), peers: [{ id: peer.deviceId }], limits: { idleSessionMs: 20 }, discovery: { staticProbeIntervalMs: 0 } });
  await target.start();
  try {
    for (let round = 0; round < rounds; round++) await requestCrossingIdleClose(target, peer);
  } finally {
    await target.stop();
  }
}

const rounds = Number(option("--rounds") ?? 2000);
const mode = option("--node-only");
const started = Date.now();
(mode === "close" || mode === "goaway" ? nodeOnly(rounds, mode) : device(rounds)).then(
  () => console.log(`${rounds} rounds (${mode ? `node:http2, idle sessions ended with ${mode}` : "a device"}) on Node ${process.version} in ${Math.round((Date.now() - started) / 1000)} s: no crash`),
  (err: Error) => {
    console.error(err);
    process.exit(1);
  },
);
