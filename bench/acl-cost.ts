import { randomBytes } from "node:crypto";
import { base32, Device, Identity, Rule } from "../lib";

const GROUPS = 10;
const MEMBERS = 100;
const RULES = 1_000;

/** A policy of RULES rules over GROUPS groups of MEMBERS keys, in which `peer` is allowed by one group rule. */
async function heavyPolicy(device: Device, peer: string): Promise<void> {
  const randomId = (): string => base32(randomBytes(32));
  for (let g = 0; g < GROUPS; g++) {
    const members = Array.from({ length: MEMBERS - 1 }, randomId);
    if (g === GROUPS - 1) members.push(peer);
    else members.push(randomId());
    await device.setGroup(`group-${g}`, members);
  }
  const rules: Rule[] = [];
  for (let i = 0; rules.length < RULES - 2; i++) {
    rules.push({ effect: "allow", principal: `group:group-${i % (GROUPS - 1)}`, verb: "send", resource: `msg/other/${i}/#` });
    rules.push({ effect: "deny", principal: `device:${randomId()}`, verb: "*", resource: `msg/bench/${i}` });
  }
  rules.push({ effect: "allow", principal: `group:group-${GROUPS - 1}`, verb: "send", resource: "msg/bench/#" });
  rules.push({ effect: "allow", principal: `group:group-${GROUPS - 1}`, verb: "receive", resource: "msg/bench/#" });
  device.acl.setRules(rules);
}

/** Messages per second, `window` in flight, every message on a topic of its own so no decision is cached. */
async function rate(a: Device, b: Device, count: number, window: number, round: number): Promise<number> {
  let next = 0;
  const started = process.hrtime.bigint();
  const lane = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      await a.send(b.id, `bench/r${round}/${i}`, i);
    }
  };
  await Promise.all(Array.from({ length: window }, lane));
  return count / (Number(process.hrtime.bigint() - started) / 1e9);
}

/**
 * Authorisation cost: the same two devices and connection, alternating between their own ACL (1,000 rules,
 * 10 groups of 100 keys, checked on both ends: receive at the sender, send at the receiver) and no ACL.
 * Each round measures both, in turns that alternate which goes first; one pair of rates per round.
 */
export async function aclCost(count: number, rounds: number): Promise<Array<{ withAcl: number; without: number }>> {
  const aIdentity = Identity.generate();
  const b = new Device({ identity: Identity.generate(), peers: [{ id: aIdentity.deviceId }] });
  await b.start();
  const a = new Device({ identity: aIdentity, peers: [{ id: b.id, address: `127.0.0.1:${b.port}` }], discovery: { staticProbeIntervalMs: 0 } });
  await a.start();
  b.onMessage("#", () => undefined);
  try {
    await heavyPolicy(a, b.id);
    await heavyPolicy(b, a.id);
    // On: the device's own ACL, as a flow has it. Off: a function that allows everything in its place.
    const useAcl = (on: boolean): void => {
      for (const device of [a, b]) device.authorize = on ? undefined : () => true;
    };
    useAcl(true);
    await rate(a, b, 2_000, 32, -1); // warm-up: connection, JIT
    const pairs: Array<{ withAcl: number; without: number }> = [];
    for (let round = 0; round < rounds; round++) {
      const aclFirst = round % 2 === 0;
      useAcl(aclFirst);
      const first = await rate(a, b, count, 32, round * 2);
      useAcl(!aclFirst);
      const second = await rate(a, b, count, 32, round * 2 + 1);
      pairs.push(aclFirst ? { withAcl: first, without: second } : { withAcl: second, without: first });
    }
    return pairs;
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
}
