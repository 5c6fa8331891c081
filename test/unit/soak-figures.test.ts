import should from "should";
import { GROWTH_WINDOW_S, growthFromMinuteFive, nativeMb, v8GrowthFromMinuteFive, type SoakReport } from "../../scripts/soak";

type Sample = SoakReport["rssMb"][number];

/** A 10-minute soak's samples every 15 s: V8's reserved heap swinging by 60 MB, native memory as given. */
function samples(native: (at: number) => number): Sample[] {
  const out: Sample[] = [];
  for (let at = 0; at <= 600; at += 15) {
    const heapTotalMb = 80 + (at % 60 === 0 ? 0 : 60);
    const levelDbMb = 7;
    const anonMb = heapTotalMb + levelDbMb + native(at);
    out.push({ at, mb: anonMb + 50, heapMb: 40, heapTotalMb, externalMb: 5, anonMb, fileMb: 50, levelDbMb, acksHeld: 0, v8: { newMb: 32, oldMb: heapTotalMb - 40, largeObjectsMb: 3 } });
  }
  return out;
}

describe("the soak's memory figures", () => {
  it("takes each end's lowest over 2.5 minutes, for RSS and for native memory alone", () => {
    const flat = samples(() => 20);
    should(growthFromMinuteFive(flat, 600)).equal(0);
    should(growthFromMinuteFive(flat, 600, nativeMb)).equal(0);
    const growing = samples((at) => 20 + Math.floor(at / 60));
    should(growthFromMinuteFive(growing, 600, nativeMb)).equal(4); // lowest 23 in 225–375 s, 27 in 450–600 s
  });

  it("tells native growth apart from V8's heap ending on a peak", () => {
    const list = samples(() => 20);
    // The last 2.5 minutes caught V8 at its peak throughout: RSS reads +60, native memory did not move.
    for (const sample of list.filter((s) => s.at >= 600 - GROWTH_WINDOW_S)) {
      sample.heapTotalMb = 140;
      sample.anonMb = 140 + sample.levelDbMb + 20;
      sample.mb = sample.anonMb + 50;
    }
    should(growthFromMinuteFive(list, 600)).equal(60);
    should(growthFromMinuteFive(list, 600, nativeMb)).equal(0);
  });

  it("does not read a peak of V8's heap that lasts over a minute as growth", () => {
    // As in a 30-minute soak of 2026-12-08: the old generation stayed up for 75 s before a full collection.
    const list = samples(() => 20);
    for (const sample of list.filter((s) => s.at >= 525)) {
      sample.heapTotalMb = 140;
      sample.anonMb = 140 + sample.levelDbMb + 20;
      sample.mb = sample.anonMb + 50;
    }
    should(growthFromMinuteFive(list, 600)).equal(0);
  });

  it("says which of V8's spaces a peak at the end is in", () => {
    const list = samples(() => 20);
    for (const sample of list.filter((s) => s.at >= 600 - GROWTH_WINDOW_S)) {
      sample.heapTotalMb = 140;
      sample.v8 = { newMb: 32, oldMb: 95, largeObjectsMb: 5 };
    }
    // Lowest around minute 5: 80 reserved, old 40 (80 - 40); in the last 2.5 minutes: 140, old 95.
    should(v8GrowthFromMinuteFive(list, 600)).eql({ reservedMb: 60, newMb: 0, oldMb: 55, largeObjectsMb: 2 });
    should(v8GrowthFromMinuteFive(list, 300)).be.undefined();
  });

  it("has no figure for a run shorter than 10 minutes, or without /proc's split", () => {
    should(growthFromMinuteFive(samples(() => 20), 300)).be.undefined();
    const withoutSplit = samples(() => 20).map((sample) => ({ ...sample, anonMb: undefined }));
    should(growthFromMinuteFive(withoutSplit, 600, nativeMb)).be.undefined();
  });
});
