import should from "should";
import { base32, deviceIdOf, Identity, isDeviceId, shortId } from "../../lib";
import { createHash, generateKeyPairSync } from "node:crypto";

describe("device id", () => {
  it("encodes base32 as RFC 4648 does (lower case, no padding)", () => {
    const vectors: Array<[string, string]> = [["", ""], ["f", "my"], ["fo", "mzxq"], ["foo", "mzxw6"], ["foob", "mzxw6yq"], ["fooba", "mzxw6ytb"], ["foobar", "mzxw6ytboi"]];
    for (const [input, expected] of vectors) should(base32(Buffer.from(input))).equal(expected);
  });

  it("is the SHA-256 of the DER SubjectPublicKeyInfo, 52 characters", () => {
    const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const spki = publicKey.export({ type: "spki", format: "der" });
    const id = deviceIdOf(publicKey);
    should(id).equal(base32(createHash("sha256").update(spki).digest()));
    should(id).have.length(52);
    should(isDeviceId(id)).be.true();
    should(shortId(id)).equal(id.slice(0, 8));
  });

  it("tells device ids from other strings", () => {
    should(isDeviceId(Identity.generate().deviceId)).be.true();
    for (const bad of ["", "abc", "A".repeat(52), "1".repeat(52), "a".repeat(53), 42, undefined]) should(isDeviceId(bad)).be.false();
  });
});
