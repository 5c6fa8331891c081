import should from "should";
import { decodePayload, encodePayload, WireError } from "../../lib";

describe("payload encoding", () => {
  const roundTrip = (value: unknown): unknown => {
    const { body, contentType } = encodePayload(value);
    return decodePayload(body, contentType);
  };

  it("keeps strings, Buffers and JSON values as the same type", () => {
    should(roundTrip("héllo")).equal("héllo");
    const buffer = roundTrip(Buffer.from([0, 255, 1]));
    should(Buffer.isBuffer(buffer)).be.true();
    should(buffer).eql(Buffer.from([0, 255, 1]));
    should(roundTrip(new Uint8Array([7, 8]))).eql(Buffer.from([7, 8]));
    should(roundTrip({ a: [1, 2, { b: null }] })).eql({ a: [1, 2, { b: null }] });
    should(roundTrip(42)).equal(42);
    should(roundTrip(false)).equal(false);
    should(roundTrip(null)).equal(null);
    should(roundTrip(undefined)).equal(null);
    should(roundTrip("")).equal("");
  });

  it("refuses what JSON cannot carry, with a reason", () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    should(() => encodePayload(circular)).throw(WireError, { code: "BAD_REQUEST" });
    should(() => encodePayload(() => 1)).throw(WireError, { message: /function cannot be sent/ });
    should(() => encodePayload(10n)).throw(WireError);
  });

  it("refuses malformed JSON and unknown content types", () => {
    should(() => decodePayload(Buffer.from("{oops"), "application/json")).throw(WireError, { code: "BAD_REQUEST" });
    should(() => decodePayload(Buffer.from("x"), "image/png")).throw(WireError, { message: /unsupported content-type/ });
    should(() => decodePayload(Buffer.from("x"), undefined)).throw(WireError);
  });
});
