import { Device, Identity } from "../lib";
import { SimRadio } from "../test/ble/sim-radio";
import { byteSource } from "../test/helpers/devices";

/**
 * A stream over BLE (noble and bleno on the simulated radio, mutual TLS and HTTP/2 through the GATT pipe)
 * against the rate the radio was given: what the pipe, TLS records and HTTP/2 frames cost on a slow link.
 */
export async function bleThroughput(options: { mtu: number; bytesPerSecond: number; bytes: number }): Promise<{ ours: number; link: number }> {
  const radio = new SimRadio({ mtu: options.mtu, bytesPerSecond: options.bytesPerSecond });
  const [aIdentity, bIdentity] = [Identity.generate(), Identity.generate()];
  const b = new Device({ identity: bIdentity, peers: [{ id: aIdentity.deviceId }], discovery: { staticProbeIntervalMs: 0, ble: { bindings: radio.device("sim-b") } } });
  const a = new Device({ identity: aIdentity, peers: [{ id: bIdentity.deviceId }], discovery: { staticProbeIntervalMs: 0, ble: { bindings: radio.device("sim-a") } } });
  try {
    await Promise.all([a.start(), b.start()]);
    b.onStream("bench", async (stream) => {
      for await (const _chunk of stream.body) void _chunk;
    });
    while (!a.peerTable.get(b.id)) await new Promise((resolve) => setTimeout(resolve, 20));
    b.onMessage("warm", () => undefined);
    await a.send(b.id, "warm", 1); // the GATT connection and the TLS handshake, outside the timing
    const started = process.hrtime.bigint();
    await a.sendStream(b.id, "bench", byteSource(options.bytes, 16 * 1024));
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return { ours: Math.round(options.bytes / 1000 / seconds * 10) / 10, link: options.bytesPerSecond / 1000 };
  } finally {
    await Promise.all([a.stop(), b.stop()]);
    radio.shutdown();
  }
}
