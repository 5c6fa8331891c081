import should from "should";
import { groupPrincipal, Identity, matchDeviceIds, parseGroupReference } from "../../lib";

describe("references to devices and groups (one rule each, for every caller)", () => {
  const a = Identity.generate().deviceId;
  const b = Identity.generate().deviceId;

  it("names a device by its whole id or a prefix of at least 8 characters, trimmed and in any case", () => {
    should(matchDeviceIds(a, [a, b])).eql([a]);
    should(matchDeviceIds(` ${a.slice(0, 8).toUpperCase()} `, [a, b])).eql([a]);
    should(matchDeviceIds(a.slice(0, 7), [a, b])).eql([]); // too short to be meant
    should(matchDeviceIds("front-door", [a, b])).eql([]);
    const twin = `${a.slice(0, 10)}${b.slice(10)}`;
    should(matchDeviceIds(a.slice(0, 10), [a, twin])).have.length(2); // ambiguous: the caller says so
    should(matchDeviceIds(a, [a, `${a}x`])).eql([a]); // a whole id wins over being a prefix
  });

  it("reads group:<name>, group:<owner>/<name> and, where msg.to allows it, a bare name", () => {
    should(parseGroupReference("group:family")).eql({ name: "family" });
    should(parseGroupReference(`group:${a}/line 3`)).eql({ owner: a, name: "line 3" });
    should(parseGroupReference("family")).be.undefined();
    should(parseGroupReference("family", { bare: true })).eql({ name: "family" });
    should(parseGroupReference("group:not-an-id/family")).be.undefined();
    should(parseGroupReference(`group:${a}/`)).be.undefined();
    should(parseGroupReference("group:")).be.undefined();
    should(groupPrincipal(a, "family")).equal(`group:${a}/family`);
  });
});
