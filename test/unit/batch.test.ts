import should from "should";
import { decodeBatch, encodeBatch, type BatchItem } from "../../lib/wire/batch";

describe("batch encoding", () => {
  it("lays each message out as [u32 header length][JSON header][u32 body length][body], one after another", () => {
    const body = Buffer.from([0, 1, 2]);
    const encoded = encodeBatch([{ id: "m1", topic: "a/b", contentType: "application/octet-stream", body }, { id: "m2", topic: "c", contentType: "text/plain", body: Buffer.alloc(0) }]);
    const header = (id: string, topic: string, contentType: string): Buffer => Buffer.from(JSON.stringify({ id, topic, contentType }));
    const u32 = (n: number): Buffer => Buffer.from([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
    const first = header("m1", "a/b", "application/octet-stream");
    const second = header("m2", "c", "text/plain");
    should(encoded.equals(Buffer.concat([u32(first.length), first, u32(3), body, u32(second.length), second, u32(0)]))).be.true();
  });

  it("gives back what it was given: topics beyond ASCII, empty and binary bodies, many messages", () => {
    const items: BatchItem[] = [
      { id: "ü-1", topic: "küche/temperatur/°C", contentType: "text/plain; charset=utf-8", body: Buffer.from("21,5 °C") },
      { id: "2", topic: "t", contentType: "application/octet-stream", body: Buffer.alloc(0) },
      ...Array.from({ length: 200 }, (_, i) => ({ id: `n${i}`, topic: `bulk/${i}`, contentType: "application/json", body: Buffer.from(JSON.stringify({ i, blob: "x".repeat(i) })) })),
    ];
    const decoded = decodeBatch(encodeBatch(items), 256);
    should(decoded.map(({ id, topic, contentType, body }) => ({ id, topic, contentType, body: body.toString("hex") }))).eql(items.map(({ id, topic, contentType, body }) => ({ id, topic, contentType, body: body.toString("hex") })));
    should(encodeBatch([]).length).equal(0);
  });
});
