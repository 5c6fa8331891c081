/**
 * Runs requestCrossingIdleClose and requestAfterGoaway against a device a few times and exits: the program that
 * test/integration/native-heap.test.ts runs under valgrind.
 */
import { Device, Identity } from "../../lib";
import { requestAfterGoaway, requestCrossingIdleClose } from "./crossing-request";

async function main(): Promise<void> {
  const peer = Identity.generate();
  const device = new Device({ identity: Identity.generate(), peers: [{ id: peer.deviceId }], limits: { idleSessionMs: 300 }, discovery: { staticProbeIntervalMs: 0 } });
  await device.start();
  try {
    for (let round = 0; round < Number(process.argv[2] ?? 3); round++) {
      await requestCrossingIdleClose(device, peer);
      await requestAfterGoaway(device, peer);
    }
  } finally {
    await device.stop();
  }
}

main().then(
  () => console.log("crossing requests done"),
  (err: Error) => {
    console.error(err);
    process.exit(1);
  },
);
