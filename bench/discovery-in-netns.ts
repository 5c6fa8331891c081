import { DEFAULT_ANNOUNCE_INTERVAL_MS, DEFAULT_EXPIRE_MS } from "../lib";
import { netnsUnavailable, TEST_INTERFACE, TestNetwork } from "../test/netns/harness";
import { HostDevice } from "../test/netns/host-device";
import { median } from "./stats";

export interface DiscoveryTimes {
  foundMs: number;
  lostAfterCrashMs: number;
  lostAfterStopMs: number;
  announceIntervalMs: number;
  expireMs: number;
}

/**
 * mDNS over a namespace bridge with the default timing: from a device starting (its listener up and its
 * first announcement sent) to the peer's found event, and from a SIGKILL or a clean stop to lost; with
 * `privately`, both announce beacons instead of their ids (private discovery).
 * Returns undefined, saying why, where namespaces are unavailable.
 */
export async function discoveryTimes(rounds: number, privately = false): Promise<DiscoveryTimes | undefined> {
  const unavailable = netnsUnavailable();
  if (unavailable) {
    console.warn(`discovery benchmark skipped: ${unavailable}`);
    return undefined;
  }
  const network = TestNetwork.create(2);
  const [observerHost, subjectHost] = network.hosts;
  const observer = new HostDevice(network, observerHost, "observer");
  const found: number[] = [];
  const crashed: number[] = [];
  const stopped: number[] = [];
  // Private discovery finds only peers it knows: every subject and the observer know each other from the start.
  const subjects = Array.from({ length: rounds * 2 }, (_, i) => new HostDevice(network, subjectHost, `subject${i}`));
  const start = (device: HostDevice, peers: HostDevice[]): Promise<number> =>
    privately ? device.launch({ peers: peers.map((peer) => ({ id: peer.id, name: peer.name })), mdns: { interface: TEST_INTERFACE }, privateDiscovery: {} }) : device.start();
  try {
    await start(observer, subjects);
    for (let round = 0; round < rounds; round++) {
      for (const ending of ["kill", "stop"] as const) {
        const subject = subjects.shift()!;
        const startedAt = await start(subject, [observer]);
        found.push((await observer.peerEvent("found", subject.id, 10_000, startedAt)).at - startedAt);
        const endedAt = ending === "kill" ? await subject.kill() : await subject.stop();
        const lost = await observer.peerEvent("lost", subject.id, DEFAULT_EXPIRE_MS * 3, endedAt);
        (ending === "kill" ? crashed : stopped).push(lost.at - endedAt);
      }
    }
  } finally {
    await observer.kill();
    network.destroy();
  }
  return { foundMs: median(found), lostAfterCrashMs: median(crashed), lostAfterStopMs: median(stopped), announceIntervalMs: DEFAULT_ANNOUNCE_INTERVAL_MS, expireMs: DEFAULT_EXPIRE_MS };
}
