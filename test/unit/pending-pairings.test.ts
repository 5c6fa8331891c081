import { randomBytes } from "node:crypto";
import should from "should";
import { PendingPairings } from "../../lib/acl/pending-pairings";

const SELF = "s".repeat(52);
const peer = (n: number): string => String(n).padStart(52, "p");

describe("PendingPairings (requests waiting for a user's confirmation)", () => {
  it("holds two requests per source address and sixteen in all; a device asking again replaces its own", () => {
    const pairings = new PendingPairings(SELF, () => undefined);
    const ask = (n: number, address: string): string => pairings.acceptIncoming({ from: peer(n), keyingMaterial: randomBytes(32), address });
    ask(1, "10.0.0.1");
    ask(2, "10.0.0.1");
    should(() => ask(3, "10.0.0.1")).throw({ code: "REFUSED" });
    ask(2, "10.0.0.1"); // the same device again: it takes its own slot, not a new one
    should(pairings.list()).have.length(2);
    for (let n = 10; n < 24; n++) ask(n, `10.0.1.${n}`);
    should(pairings.list()).have.length(16);
    should(() => ask(99, "10.0.2.1")).throw({ code: "REFUSED" });
  });

  it("without the digits, takes only the one request that came inside a window; wrong digits drop the request", () => {
    const pairings = new PendingPairings(SELF, () => undefined);
    const before = pairings.acceptIncoming({ from: peer(1), keyingMaterial: randomBytes(32) });
    pairings.openWindow(60_000);
    const inside = pairings.acceptIncoming({ from: peer(2), keyingMaterial: randomBytes(32) });
    const after = pairings.acceptIncoming({ from: peer(3), keyingMaterial: randomBytes(32) }); // the window took one
    should(() => pairings.take(before, undefined)).throw({ code: "REFUSED" });
    should(pairings.take(inside, undefined).peer.id).equal(peer(2));
    should(() => pairings.take(after, undefined)).throw({ code: "REFUSED" });
    const { sas } = pairings.list().find((pending) => pending.requestId === after)!;
    should(() => pairings.take(after, sas === "000000" ? "000001" : "000000")).throw({ code: "PAIRING_MISMATCH" });
    should(() => pairings.take(after, sas)).throw({ code: "NOT_FOUND" });
    should(() => pairings.openWindow(11 * 60_000)).throw({ code: "BAD_REQUEST" });
  });

  it("names a peer by the name this device knows it by, else by its claimed name with its id prefix", () => {
    const pairings = new PendingPairings(SELF, (id) => (id === peer(1) ? "gateway" : undefined));
    pairings.acceptIncoming({ from: peer(1), name: "anything", keyingMaterial: randomBytes(32) });
    pairings.acceptIncoming({ from: peer(2), name: "kitchen\u202e", keyingMaterial: randomBytes(32) });
    should(pairings.list().map((pending) => pending.peer.name)).eql(["gateway", `kitchen (${peer(2).slice(0, 8)})`]);
  });
});
