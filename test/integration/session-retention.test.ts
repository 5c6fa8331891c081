import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import v8 from "node:v8";
import should from "should";
import { Device, Identity } from "../../lib";
import { probeDevice } from "../../lib/discovery/static-transport";
import { rawSession } from "../helpers/raw-client";

/**
 * A connection that has ended must not stay in memory. Node's http2 keeps a session's idle timer
 * (session.setTimeout) running after the session is destroyed, and the timer holds the whole session
 * object until it fires: a known peer's after 120 s. A static transport probes every known address every
 * few seconds with a connection of its own, so a device held ~930 dead sessions in the soak
 * (heap snapshot, README "Memory").
 */
describe("connections that ended are released", function () {
  this.timeout(60_000);
  let device: Device | undefined;
  afterEach(async () => {
    await device?.stop();
    device = undefined;
  });

  /** ServerHttp2Session is not exported by node:http2: a throwaway server hands one over. */
  async function serverSessionClass(): Promise<new (...args: never[]) => object> {
    const server = http2.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    client.on("error", () => undefined);
    const session = await new Promise<http2.ServerHttp2Session>((resolve) => server.once("session", resolve));
    const ctor = session.constructor as new (...args: never[]) => object;
    client.destroy();
    session.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return ctor;
  }

  const liveCount = (ctor: new (...args: never[]) => object): number => v8.queryObjects(ctor, { format: "count" }) as number;

  it("a known peer's probes and closed connections leave no session objects behind (v8.queryObjects after a full collection)", async () => {
    const ServerSession = await serverSessionClass();
    const peer = Identity.generate();
    device = new Device({ identity: Identity.generate(), peers: [{ id: peer.deviceId }], discovery: { staticProbeIntervalMs: 0 } });
    const port = await device.start();
    const before = liveCount(ServerSession);
    const ROUNDS = 40;
    for (let i = 0; i < ROUNDS; i++) {
      should(await probeDevice(peer, `127.0.0.1:${port}`)).equal(device.id);
      const session = await rawSession(port, { key: peer.privateKeyPem, cert: peer.certificatePem });
      await new Promise<void>((resolve) => session.close(() => resolve()));
    }
    // Wait until the device has seen every connection end.
    const deadline = Date.now() + 10_000;
    while ((device as unknown as { server: { connectionCount: number } }).server.connectionCount > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    await new Promise((resolve) => setImmediate(resolve));
    const retained = liveCount(ServerSession) - before;
    should(retained).be.below(ROUNDS / 4, `${retained} of ${ROUNDS * 2} ended connections are still held in memory`);
  });
});
