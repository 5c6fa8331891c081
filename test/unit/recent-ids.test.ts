import should from "should";
import { RecentIds } from "../../lib/wire/recent-ids";

describe("RecentIds", () => {
  it("reports repeats and forgets the oldest past its capacity", () => {
    const ids = new RecentIds(3);
    should(["a", "b", "c"].map((id) => ids.add("p", id))).eql([true, true, true]);
    should(ids.add("p", "b")).be.false();
    should(ids.add("p", "d")).be.true(); // evicts a
    should(ids.add("p", "a")).be.true(); // evicts b
    should(ids.add("p", "c")).be.false();
    should(ids.add("p", "b")).be.true();
  });

  it("keeps each sender's ids apart, with one capacity across them", () => {
    const ids = new RecentIds(3);
    should(ids.add("p", "x")).be.true();
    should(ids.add("q", "x")).be.true(); // the same id from another sender is another message
    should(ids.add("p", "x")).be.false();
    should(ids.add("q", "x")).be.false();
    should(ids.add("r", "y")).be.true();
    should(ids.add("r", "z")).be.true(); // evicts p's x, the oldest of all
    should(ids.senders).equal(2); // p has nothing left and is dropped
    should(ids.add("p", "x")).be.true();
  });

  it("adds a sender's id when the eviction it causes empties that sender's own set", () => {
    const ids = new RecentIds(1);
    should(ids.add("p", "a")).be.true();
    should(ids.add("p", "b")).be.true(); // evicts a, p's only id
    should(ids.add("p", "b")).be.false();
    should(ids.senders).equal(1);
  });

  it("lets a deleted id be added again", () => {
    const ids = new RecentIds(2);
    ids.add("p", "x");
    ids.delete("p", "x");
    should(ids.senders).equal(0);
    should(ids.add("p", "x")).be.true();
  });
});
