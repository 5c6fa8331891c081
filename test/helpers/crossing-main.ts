/**
 * Runs requestCrossingIdleClose and requestAfterGoaway against a device a few times and exits: the program that
 * test/integration/native-heap.test.ts runs under valgrind (and, idle case only, scripts/idle-close-stress.ts).
 */
import { Device, Identity } from "../../lib";
import { requestAfterGoaway, requestCrossingIdleClose } from "./crossing-request";

/** A device whose idle connections close after `idleMs`, sent `rounds` of each crossing case (or only the idle one). */
export async function crossRounds(rounds: number, idleMs: number, cases: "both" | "idle" = "both"): Promise<void> {
  const peer = Identity.generate();
  const device = new Device({ identity: Identity.generate(), peers: [{ id: peer.deviceId }], limits: { idleSessionMs: idleMs }, discovery: { staticProbeIntervalMs: 0 } });
  await device.start();
  try {
    for (let round = 0; round < rounds; round++) {
      await requestCrossingIdleClose(device, peer);
      if (cases === "both") await requestAfterGoaway(device, peer);
    }
  } finally {
    await device.stop();
  }
}

if (require.main === module) {
  crossRounds(Number(process.argv[2] ?? 3), 300).then(
    () => console.log("crossing requests done"),
    (err: Error) => {
      console.error(err);
      process.exit(1);
    },
  );
}
