import { Readable } from "node:stream";
import should from "should";
import { Device, Identity } from "../../lib";

const PEERS = 50;
const MESSAGES_PER_PEER = 200;
const STREAM_BYTES = 32 * 1024 * 1024;
/** The stated bound (README, Limits): 50 peers' messages and streams at one device, backpressure holding. */
const RSS_GROWTH_BOUND_MB = 256;

/** A stream of `total` bytes made as it is read, so the sender holds no copy of it. */
function generated(total: number, fill: number): Readable {
  let left = total;
  return new Readable({
    read() {
      const size = Math.min(64 * 1024, left);
      left -= size;
      this.push(size > 0 ? Buffer.alloc(size, fill) : null);
    },
  });
}

/**
 * 50 devices at once against one: each sends 200 messages (16 in flight) and a 32 MB stream (1.6 GB in all), while the
 * receiving flow reads streams slowly. Everything arrives once, and HTTP/2 flow control keeps the
 * unread bytes with the senders, so memory stays within a stated bound.
 */
describe(`load: ${PEERS} peers at once against one device`, function () {
  this.timeout(180_000);
  const devices: Device[] = [];
  afterEach(async () => {
    await Promise.all(devices.splice(0).map((device) => device.stop()));
  });

  it(`delivers ${PEERS * MESSAGES_PER_PEER} messages and ${PEERS} streams of 32 MB exactly once, with memory under its bound`, async () => {
    const identities = Array.from({ length: PEERS }, () => Identity.generate());
    const hub = new Device({ identity: Identity.generate(), peers: identities.map((identity, i) => ({ id: identity.deviceId, name: `peer-${i}` })), discovery: { staticProbeIntervalMs: 0 } });
    devices.push(hub);
    const port = await hub.start();
    const seen = new Map<string, number>();
    hub.onMessage("load/#", (message) => {
      const key = `${message.from.id}/${(message.payload as { seq: number }).seq}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
    });
    const streamed = new Map<string, number>();
    hub.onStream("load/#", async (stream) => {
      let bytes = 0;
      for await (const chunk of stream.body) {
        bytes += (chunk as Buffer).length;
        await new Promise((resolve) => setTimeout(resolve, 2)); // a slow flow: senders must wait, not pile up here
      }
      streamed.set(stream.from.id, bytes);
    });

    const peers = identities.map((identity) => new Device({ identity, peers: [{ id: hub.id, name: "hub", address: `127.0.0.1:${port}` }], discovery: { staticProbeIntervalMs: 0 } }));
    devices.push(...peers);
    await Promise.all(peers.map((peer) => peer.start()));

    let peakRss = 0;
    const rssBefore = process.memoryUsage().rss;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 100);
    const started = Date.now();
    try {
      await Promise.all(
        peers.map(async (peer, p) => {
          let next = 0;
          const workers = Array.from({ length: 16 }, async () => {
            while (next < MESSAGES_PER_PEER) {
              const seq = next++;
              await peer.send(hub.id, `load/m/${p}`, { seq, pad: "x".repeat(100) });
            }
          });
          const stream = peer.sendStream(hub.id, `load/s/${p}`, generated(STREAM_BYTES, p));
          await Promise.all([...workers, stream]);
        }),
      );
    } finally {
      clearInterval(sampler);
    }
    const seconds = (Date.now() - started) / 1000;
    const growthMb = Math.round((peakRss - rssBefore) / 1048576);
    console.log(`      ${PEERS} peers: ${seen.size} messages and ${streamed.size} streams (${(PEERS * STREAM_BYTES) / 1048576} MB) in ${seconds.toFixed(1)} s; RSS grew by ${growthMb} MB at the peak`);

    should(seen.size).equal(PEERS * MESSAGES_PER_PEER);
    should([...seen.values()].every((count) => count === 1)).be.true();
    should(streamed.size).equal(PEERS);
    should([...streamed.values()].every((bytes) => bytes === STREAM_BYTES)).be.true();
    should(growthMb).be.below(RSS_GROWTH_BOUND_MB);
  });
});
