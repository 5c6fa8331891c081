import { setTimeout as pause } from "node:timers/promises";
import v8 from "node:v8";
import vm from "node:vm";
import should from "should";
import { Device, Identity, memoryTrimStatus, residentSplit, trimMemoryNow } from "../../lib";
import { holdMemoryTrim, trimUnderWay } from "../../lib/device/memory-trim";

const MB = 1024 * 1024;

/** A full collection (twice, with a pause: V8 frees dead ArrayBuffers' memory on a background sweep). */
async function collectGarbage(): Promise<void> {
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc") as () => void;
  gc();
  await pause(100);
  gc();
  await pause(100);
}

describe("memory trim: the C heap's freed memory goes back to the system", function () {
  this.timeout(30_000);

  before(function () {
    const status = memoryTrimStatus();
    if (!status.available) {
      console.log(`      skipped: ${status.reason}`);
      this.skip();
    }
  });

  it("gives back the holes that freed blocks leave in malloc's arenas, which glibc keeps on its own", async () => {
    // 100 KB blocks come from malloc's arenas (below its mmap threshold); keeping every tenth alive pins
    // the arena around the other nine, as long-lived objects do between the short-lived ones in a device.
    let blocks: Buffer[] | undefined = Array.from({ length: 800 }, () => Buffer.alloc(100 * 1024, 1));
    const pinned = blocks.filter((_, i) => i % 10 === 0);
    blocks = undefined;
    await collectGarbage();
    const kept = residentSplit().anonymousBytes!;
    await pause(200);
    // glibc on its own gives none of the ~70 MB back: resident memory stays where the collection left it.
    should(kept - residentSplit().anonymousBytes!).be.below(10 * MB);
    const released = await trimMemoryNow();
    should(released).be.aboveOrEqual(40 * MB, `only ${((released ?? 0) / MB).toFixed(1)} MB of ~70 MB freed went back`);
    should(memoryTrimStatus().trims).be.aboveOrEqual(1);
    should(pinned.every((block) => block[0] === 1 && block[block.length - 1] === 1)).be.true("a block in use was touched");
  });

  it("runs while a device runs, at the device's interval, and stops with the last device", async () => {
    const device = new Device({ identity: Identity.generate(), memoryTrimIntervalMs: 100 });
    const other = new Device({ identity: Identity.generate(), memoryTrimIntervalMs: 0 });
    const before = memoryTrimStatus().trims;
    await device.start();
    await other.start();
    try {
      should(memoryTrimStatus()).containDeep({ holders: 1, intervalMs: 100 });
      const deadline = Date.now() + 10_000;
      while (memoryTrimStatus().trims < before + 3) {
        if (Date.now() > deadline) throw new Error(`${memoryTrimStatus().trims - before} trims in 10 s at a 100 ms interval`);
        await pause(50);
      }
    } finally {
      await device.stop();
      await other.stop();
    }
    should(memoryTrimStatus().holders).equal(0);
    should(memoryTrimStatus().intervalMs).be.undefined();
    await trimUnderWay(); // one under way when the device stopped ends on its own
    const status = memoryTrimStatus();
    await pause(400);
    should(memoryTrimStatus().trims).equal(status.trims, "trims went on after the last device stopped");
  });

  it("keeps its pace through a Node-RED deploy's stop and start: the next trim is due an interval after the last", async () => {
    const before = memoryTrimStatus().trims;
    let release = holdMemoryTrim(300);
    try {
      // Released and held again every 100 ms, as devices are on each deploy, for 1.5 s: five trims are due.
      for (const until = Date.now() + 1_500; Date.now() < until; ) {
        await pause(100);
        release();
        release = holdMemoryTrim(300);
      }
    } finally {
      release();
    }
    should(memoryTrimStatus().trims - before).be.aboveOrEqual(3);
  });

  it("refuses an interval that is not 0 or a positive number, before the device starts", () => {
    for (const memoryTrimIntervalMs of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      should(() => new Device({ identity: Identity.generate(), memoryTrimIntervalMs })).throw(/memoryTrimIntervalMs must be 0 \(off\) or a positive number/);
    }
  });
});
