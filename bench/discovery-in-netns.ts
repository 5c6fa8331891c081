import { DEFAULT_ANNOUNCE_INTERVAL_MS, DEFAULT_EXPIRE_MS } from "../lib";
import { netnsUnavailable, TestNetwork } from "../test/netns/harness";
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
 * first announcement sent) to the peer's found event, and from a SIGKILL or a clean stop to lost.
 * Returns undefined, saying why, where namespaces are unavailable.
 */
export async function discoveryTimes(rounds: number): Promise<DiscoveryTimes | undefined> {
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
  try {
    await observer.start();
    for (let round = 0; round < rounds; round++) {
      for (const ending of ["kill", "stop"] as const) {
        const subject = new HostDevice(network, subjectHost, `subject${round}`);
        const startedAt = await subject.start();
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
