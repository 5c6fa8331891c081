import should from "should";
import type { Readable } from "node:stream";
import { OutgoingSequences } from "../../lib";

async function readAll(body: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

describe("OutgoingSequences", () => {
  it("opens one stream per sequence and resolves the last part with the stream's result", async () => {
    const sequences = new OutgoingSequences<string>(1000);
    let starts = 0;
    const start = (body: Readable) => {
      starts += 1;
      return readAll(body);
    };
    should(await sequences.push("s1", 1, Buffer.from("b"), undefined, start)).be.undefined();
    should(await sequences.push("s1", 0, Buffer.from("a"), undefined, start)).be.undefined();
    should(await sequences.push("s1", 2, Buffer.from("c"), 3, start)).equal("abc");
    should(starts).equal(1);
    should(sequences.size).equal(0);
  });

  it("answers once per stream when every part arrives at once (a split node's whole sequence) and most wait for room", async () => {
    const sequences = new OutgoingSequences<string>(1000);
    const part = Buffer.alloc(16_384, 97);
    const start = async (body: Readable) => String((await readAll(body)).length);
    const answers = await Promise.all(Array.from({ length: 16 }, (_, index) => sequences.push("s3", index, part, 16, start)));
    should(answers.filter((answer) => answer !== undefined)).eql([String(16 * 16_384)]);
  });

  it("fails the waiting part when the stream fails, and refuses later parts of that sequence at once", async () => {
    const sequences = new OutgoingSequences<string>(1000);
    let starts = 0;
    const start = async (body: Readable) => {
      starts += 1;
      body.resume();
      throw new Error("peer refused");
    };
    await should(sequences.push("s2", 0, Buffer.alloc(4 * 1024 * 1024), undefined, start)).be.rejectedWith(/peer refused/);
    await should(sequences.push("s2", 1, Buffer.from("x"), 2, start)).be.rejectedWith(/sequence s2 already failed: peer refused/);
    should(starts).equal(1);
  });

  it("aborts a sequence whose next part does not come in time", async () => {
    const sequences = new OutgoingSequences<string>(30);
    let outcome: Promise<string> | undefined;
    await sequences.push("s3", 0, Buffer.from("a"), undefined, (body) => (outcome = readAll(body)));
    await should(outcome!).be.rejectedWith(/no part of sequence s3/);
    await should(sequences.push("s3", 1, Buffer.from("b"), 2, readAll)).be.rejectedWith(/already failed/);
  });

  it("aborts open sequences on close", async () => {
    const sequences = new OutgoingSequences<string>(60_000);
    let outcome: Promise<string> | undefined;
    await sequences.push("s4", 0, Buffer.from("a"), undefined, (body) => (outcome = readAll(body)));
    sequences.close(new Error("node closed"));
    await should(outcome!).be.rejectedWith("node closed");
    should(sequences.size).equal(0);
  });
});
