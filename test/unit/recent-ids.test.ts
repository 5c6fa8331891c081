import should from "should";
import { RecentIds } from "../../lib/wire/recent-ids";

describe("RecentIds", () => {
  it("reports repeats and forgets the oldest past its capacity", () => {
    const ids = new RecentIds(3);
    should(["a", "b", "c"].map((id) => ids.add(id))).eql([true, true, true]);
    should(ids.add("b")).be.false();
    should(ids.add("d")).be.true(); // evicts a
    should(ids.add("a")).be.true(); // evicts b
    should(ids.add("c")).be.false();
    should(ids.add("b")).be.true();
  });

  it("lets a deleted id be added again", () => {
    const ids = new RecentIds(2);
    ids.add("x");
    ids.delete("x");
    should(ids.add("x")).be.true();
  });
});
