import should from "should";
import type { DeviceDoc } from "../../lib/mesh/envelope";
import { Router } from "../../lib/mesh/router";

const NOW = 1_000_000;
const HOUR = 3_600_000;

/** A router fed with device documents that list only the neighbours and when they were seen. */
function routerOf(links: Record<string, Record<string, number>>, freshMs = HOUR): Router {
  const router = new Router(freshMs);
  for (const [id, neighbours] of Object.entries(links)) router.update({ id, neighbours } as unknown as DeviceDoc);
  return router;
}

describe("Router (directed mesh routing)", () => {
  it("forwards toward the destination only: on a Y, never down the side branch", () => {
    // a - b - c, and b - d
    const router = routerOf({ a: { b: NOW }, b: { a: NOW, c: NOW, d: NOW }, c: { b: NOW }, d: { b: NOW } });
    should(router.forwards("a", "b", ["c"], NOW)).be.true();
    should(router.forwards("b", "c", ["c"], NOW)).be.true();
    should(router.forwards("b", "d", ["c"], NOW)).be.false();
    should(router.forwards("b", "a", ["c"], NOW)).be.false();
  });

  it("routes around a link once it has gone stale, even when it was routed over just before", () => {
    // a - b - c (links seen at NOW), and a longer a - d - e - c (seen later, so fresh for longer)
    const later = NOW + 900;
    const router = routerOf({ a: { b: NOW, d: later }, b: { c: NOW }, d: { e: later }, e: { c: later } }, 1_000);
    should(router.nextHop("a", "c", NOW + 500)).equal("b");
    // At NOW + 1500 the a-b-c links are older than 1 s; only the long way is left.
    should(router.nextHop("a", "c", NOW + 1_500)).equal("d");
    should(router.forwards("a", "b", ["c"], NOW + 1_500)).be.false();
  });

  it("sends one copy where two paths are equally short: the freshest link wins, then the lower id", () => {
    // s reaches t through x or through y, both 2 hops
    const fresherX = routerOf({ s: { x: NOW, y: NOW - 1000 }, x: { t: NOW }, y: { t: NOW } });
    should(fresherX.nextHop("s", "t", NOW)).equal("x");
    should(fresherX.forwards("s", "x", ["t"], NOW)).be.true();
    should(fresherX.forwards("s", "y", ["t"], NOW)).be.false();
    const tie = routerOf({ s: { y: NOW, x: NOW }, x: { t: NOW }, y: { t: NOW } });
    should(tie.nextHop("s", "t", NOW)).equal("x");
  });

  it("forgets links older than the freshness window, and then knows no path", () => {
    const router = routerOf({ a: { b: NOW - 2 * HOUR }, b: { c: NOW } });
    should(router.nextHop("a", "c", NOW)).be.undefined();
    should(router.forwards("a", "b", ["c"], NOW)).be.false();
    should(router.nextHop("b", "c", NOW)).equal("c");
  });

  it("with several destinations, forwards to the next hop of each", () => {
    // b is the hub: c and d hang off it on separate branches
    const router = routerOf({ a: { b: NOW }, b: { c: NOW, d: NOW }, e: { a: NOW } });
    should(router.forwards("b", "c", ["c", "d"], NOW)).be.true();
    should(router.forwards("b", "d", ["c", "d"], NOW)).be.true();
    should(router.forwards("b", "a", ["c", "d"], NOW)).be.false();
    should(router.forwards("a", "e", ["c"], NOW)).be.false();
  });
});
