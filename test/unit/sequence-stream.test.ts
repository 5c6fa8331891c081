import should from "should";
import { Rechunker, SequenceStream } from "../../lib";

async function collect(sequence: SequenceStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of sequence.readable) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

describe("SequenceStream", () => {
  it("writes parts in order and ends after the counted last one", async () => {
    const sequence = new SequenceStream();
    const text = collect(sequence);
    await sequence.push(0, Buffer.from("a"));
    await sequence.push(1, Buffer.from("b"));
    await sequence.push(2, Buffer.from("c"), 3);
    should(sequence.complete).be.true();
    should(await text).equal("abc");
  });

  it("parts that all wait for room at once share one wait (no listener pile-up on the stream)", async () => {
    const sequence = new SequenceStream();
    const part = Buffer.alloc(16_384, 1); // a split node's parts, all delivered before the reader reads
    const writes = Array.from({ length: 20 }, (_, index) => sequence.push(index, part, 20));
    should(sequence.readable.listenerCount("drain")).be.belowOrEqual(1);
    should(await collect(sequence)).have.length(20 * 16_384);
    await Promise.all(writes);
    should(sequence.readable.listenerCount("drain")).equal(0);
  });

  it("reorders parts that arrive out of order", async () => {
    const sequence = new SequenceStream();
    const text = collect(sequence);
    await sequence.push(2, Buffer.from("c"), 3);
    await sequence.push(0, Buffer.from("a"));
    should(sequence.complete).be.false();
    await sequence.push(1, Buffer.from("b"));
    should(await text).equal("abc");
  });

  it("refuses repeated parts, parts past the count, a changing count and bad indexes", async () => {
    const sequence = new SequenceStream();
    void collect(sequence).catch(() => undefined);
    await sequence.push(0, Buffer.from("a"), 3);
    await should(sequence.push(0, Buffer.from("a"))).be.rejectedWith({ message: /arrived twice/ });
    await should(sequence.push(5, Buffer.from("x"))).be.rejectedWith({ message: /beyond the count/ });
    await should(sequence.push(1, Buffer.from("x"), 4)).be.rejectedWith({ message: /count changed/ });
    await should(sequence.push(-1, Buffer.from("x"))).be.rejectedWith({ message: /whole number/ });
    await should(sequence.push(1.5, Buffer.from("x"))).be.rejectedWith({ message: /whole number/ });
  });

  it("holds at most maxPending parts while waiting for a missing one", async () => {
    const sequence = new SequenceStream(2);
    void collect(sequence).catch(() => undefined);
    await sequence.push(1, Buffer.from("b"));
    await sequence.push(2, Buffer.from("c"));
    await should(sequence.push(3, Buffer.from("d"))).be.rejectedWith({ message: /more than 2 parts are waiting for part 0/ });
  });

  it("passes an abort on to the reader", async () => {
    const sequence = new SequenceStream();
    const text = collect(sequence);
    await sequence.push(0, Buffer.from("a"));
    sequence.abort(new Error("upstream gone"));
    await should(text).be.rejectedWith("upstream gone");
  });
});

describe("Rechunker", () => {
  it("cuts any input into pieces of the given size and keeps the rest for flush", () => {
    const rechunker = new Rechunker(4);
    should(rechunker.push(Buffer.from("ab"))).eql([]);
    should(rechunker.push(Buffer.from("cdefghij")).map(String)).eql(["abcd", "efgh"]);
    should(rechunker.push(Buffer.from("kl")).map(String)).eql(["ijkl"]);
    should(rechunker.flush().length).equal(0);
    rechunker.push(Buffer.from("xyz"));
    should(String(rechunker.flush())).equal("xyz");
  });
});
