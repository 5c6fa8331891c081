import should from "should";
import { Device, Identity } from "../../lib";
import { REFUSED_STREAM, requestAfterGoaway, requestCrossingIdleClose } from "../helpers/crossing-request";

/**
 * A request that crosses the device's idle close of its connection. On Node 20, Node's own refusal of
 * such a request (RST_STREAM REFUSED_STREAM from inside nghttp2's HEADERS callback) frees the stream
 * nghttp2 is still reading: the heap corruption behind the "corrupted size vs. prev_size" aborts
 * (README, "Storage across deploys and restarts"; test/integration/native-heap.test.ts shows it under
 * valgrind). The device must never take that path: it retires idle connections with a GOAWAY alone.
 */
describe("a request crossing the idle close of its connection", function () {
  this.timeout(30_000);
  const devices: Device[] = [];
  afterEach(async () => {
    await Promise.all(devices.splice(0).map((device) => device.stop()));
  });

  async function device(peers: Identity[], idle: { idleSessionMs?: number; strangerSessionMs?: number }): Promise<Device> {
    const made = new Device({ identity: Identity.generate(), peers: peers.map((peer) => ({ id: peer.deviceId })), limits: idle, discovery: { staticProbeIntervalMs: 0 } });
    devices.push(made);
    await made.start();
    return made;
  }

  for (const who of ["a known peer", "a stranger"] as const) {
    it(`from ${who}: never refused from inside the HEADERS callback; answered, or left unprocessed below the GOAWAY's last stream id`, async () => {
      const peer = Identity.generate();
      const d = await device(who === "a known peer" ? [peer] : [], { idleSessionMs: 300, strangerSessionMs: 300 });
      for (let round = 0; round < 5; round++) {
        const outcome = await requestCrossingIdleClose(d, peer);
        should(outcome.closedWhileReading).be.false(`round ${round}: the session was marked closed while it still read requests`);
        should(outcome.refused).be.false(`round ${round}: RST_STREAM ${REFUSED_STREAM} from inside the HEADERS callback`);
        should(outcome.goawayLastStream).be.a.Number(); // the connection was retired with a GOAWAY
        should(outcome.answered || outcome.goawayLastStream! < 1).be.true(`round ${round}: neither answered nor left unprocessed: ${JSON.stringify(outcome)}`);
      }
    });
  }

  it("a request sent after the peer's own GOAWAY: the device ends the connection at the GOAWAY instead of reading it in a closed session", async () => {
    const peer = Identity.generate();
    for (const d of [await device([peer], {}), await device([], {})]) {
      for (let round = 0; round < 5; round++) {
        const outcome = await requestAfterGoaway(d, peer);
        should(outcome.closedWhileReading).be.false(`round ${round}: the session was closed (not ended) while requests were still read`);
        should(outcome.refused).be.false();
        should(outcome.answered).be.false();
      }
    }
  });
});
