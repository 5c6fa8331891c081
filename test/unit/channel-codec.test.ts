import fc from "fast-check";
import should from "should";
import { WireError } from "../../lib";
import { type BatchItem, type BatchOutcome, decodeBatch, encodeBatch } from "../../lib/wire/batch";
import { decodeItems, decodeOutcomes, encodeItems, encodeOutcomes } from "../../lib/wire/channel-codec";

describe("the message channel's binary frames", () => {
  let seed = 3;
  const random = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed % n);
  const characters = [..."aZ9/_-é€😀"];
  const text = (length: number): string => Array.from({ length }, () => characters[random(characters.length)]).join("");
  const item = (): BatchItem => ({
    id: text(1 + random(40)),
    topic: text(1 + random(60)),
    contentType: ["application/json", "text/plain; charset=utf-8", "application/octet-stream"][random(3)],
    body: Buffer.from(text(random(300))),
  });

  it("carries what a /batch request carries: 500 random batches read back as the JSON encoding reads them", () => {
    for (let round = 0; round < 500; round++) {
      const items = Array.from({ length: 1 + random(20) }, item);
      const decoded = decodeItems(encodeItems(items), 256);
      should(decoded).eql(decodeBatch(encodeBatch(items), 256));
      should(decoded).eql(items);
    }
  });

  it("gives back each ack with the id, topic and size of the message sent, and each refusal as the listener gave it", () => {
    const sent = Array.from({ length: 4 }, item);
    const outcomes: BatchOutcome[] = [
      { ack: { id: sent[0].id, topic: sent[0].topic, receivers: 2, bytes: sent[0].body.length } },
      { ack: { id: sent[1].id, topic: sent[1].topic, receivers: 0, bytes: sent[1].body.length, duplicate: true } },
      { error: "REFUSED", reason: `device x is not allowed to send to msg/${sent[2].topic}`, status: 403 },
      { ack: { id: sent[3].id, topic: sent[3].topic, receivers: 70_000, bytes: sent[3].body.length } },
    ];
    const answer = encodeOutcomes(outcomes);
    should(decodeOutcomes(answer, sent)).eql(outcomes);
    // An ack takes 6 bytes; the JSON answer took about 100.
    should(encodeOutcomes([outcomes[0]]).length).equal(6);
    // A very long reason is cut, not the frame.
    const long = decodeOutcomes(encodeOutcomes([{ error: "REMOTE_ERROR", reason: "€".repeat(50_000), status: 500 }]), sent);
    should(long).eql([{ error: "REMOTE_ERROR", reason: "€".repeat(4096), status: 500 }]);
  });

  it("refuses a batch cut short anywhere, an empty or overlong id, too many messages and an oversized header, naming the item", () => {
    const items = [item(), item()];
    const whole = encodeItems(items);
    for (let end = 1; end < whole.length; end++) {
      let failure: unknown;
      try {
        decodeItems(whole.subarray(0, end), 256);
      } catch (err) {
        failure = err;
      }
      // Cut at the boundary between the two items, it is a whole batch of one.
      if (end === encodeItems([items[0]]).length) should(failure).be.undefined();
      else should(failure).be.instanceOf(WireError).and.match({ code: "BAD_REQUEST", message: /cut short in item [12]/ });
    }
    should(() => decodeItems(encodeItems([{ ...items[0], id: "" }]), 256)).throw({ code: "BAD_REQUEST", message: /item 1 lacks an id/ });
    should(() => decodeItems(encodeItems([items[0], { ...items[1], id: "x".repeat(129) }]), 256)).throw({ code: "BAD_REQUEST", message: /item 2 lacks an id/ });
    should(() => decodeItems(encodeItems([items[0], items[1], items[0]]), 2)).throw({ code: "BAD_REQUEST", message: /at most 2 messages/ });
    should(() => decodeItems(encodeItems([{ ...items[0], topic: "t".repeat(3_000) }]), 256)).throw({ code: "BAD_REQUEST", message: /item 1 has a header of 30\d\d bytes/ });
  });

  it("reads 5,000 random and mutated frames either as messages and outcomes or as a WireError, never anything else", () => {
    const valid = encodeItems([item(), item(), item()]);
    const answer = encodeOutcomes([{ ack: { id: "a", topic: "t", receivers: 1, bytes: 1 } }, { error: "REFUSED", reason: "no", status: 403 }]);
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.tuple(fc.nat(valid.length - 1), fc.nat(255)).map(([at, byte]) => Uint8Array.from(valid).fill(byte, at, at + 1)), fc.tuple(fc.nat(answer.length - 1), fc.nat(255)).map(([at, byte]) => Uint8Array.from(answer).fill(byte, at, at + 1))), (bytes) => {
        const buffer = Buffer.from(bytes);
        for (const read of [() => decodeItems(buffer, 256), () => decodeOutcomes(buffer, [item(), item(), item()])]) {
          try {
            read();
          } catch (err) {
            if (!(err instanceof WireError)) throw err;
          }
        }
      }),
      { numRuns: 5_000, seed: 42 },
    );
  });

  it("refuses an answer cut short, with an unknown outcome or with more outcomes than messages, as the peer's fault", () => {
    const sent = [item()];
    const answer = encodeOutcomes([{ ack: { id: sent[0].id, topic: sent[0].topic, receivers: 1, bytes: sent[0].body.length } }]);
    should(() => decodeOutcomes(answer.subarray(0, 3), sent)).throw({ code: "REMOTE_ERROR", message: /cut short/ });
    should(() => decodeOutcomes(Buffer.from([7]), sent)).throw({ code: "REMOTE_ERROR", message: /outcome of kind 7/ });
    should(() => decodeOutcomes(Buffer.concat([answer, answer]), sent)).throw({ code: "REMOTE_ERROR", message: /more outcomes than messages/ });
    // Fewer outcomes than messages: the caller fails the ones left without one.
    should(decodeOutcomes(Buffer.alloc(0), sent)).eql([]);
  });
});
