/**
 * The transport compliance suite for mDNS. Run only inside a test namespace (by discovery.test.ts),
 * where the multicast route points at the test interface: never in the machine's own namespace.
 */
import { Device, Identity, MdnsTransport } from "../../../lib";
import { transportCompliance } from "../../transport-compliance";

const iface = process.env.PEER_MESH_TEST_INTERFACE;
if (!iface) throw new Error("run this suite through test/netns/discovery.test.ts, inside a test namespace");
const timing = { announceIntervalMs: 200, expireMs: 800 };

transportCompliance("mdns", async () => {
  const observerIdentity = Identity.generate();
  const subject = Identity.generate();
  let device: Device | undefined;
  const stopSubject = async (): Promise<void> => {
    await device?.stop();
    device = undefined;
  };
  return {
    observer: new MdnsTransport({ deviceId: observerIdentity.deviceId, port: 9, interface: iface, ...timing }),
    observerIdentity,
    subjectId: subject.deviceId,
    async startSubject() {
      device = new Device({ identity: subject, host: "0.0.0.0", discovery: { mdns: { interface: iface, ...timing } } });
      await device.start();
    },
    stopSubject,
    foundWithinMs: 3_000,
    lostWithinMs: 1_000, // the goodbye, well before the 800 ms expiry plus an announce
    dispose: stopSubject,
  };
});
