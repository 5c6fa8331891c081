import should from "should";
import { isDocumentBody, newDocumentId, putDocument } from "../../lib";
import { useTempDatabases } from "../helpers/storage";

describe("documents written for a flow", function () {
  this.timeout(20_000); // LevelDB opens
  const database = useTempDatabases();

  it("takes plain objects only as a document's body", () => {
    should(isDocumentBody({ celsius: 19 })).be.true();
    for (const value of [null, undefined, 3, "text", [1, 2], Buffer.from("x")]) should(isDocumentBody(value)).be.false();
  });

  it("gives a document without an id one that sorts by time, and keeps an id it names", async () => {
    const db = database();
    const first = await putDocument(db, { celsius: 19 });
    const second = await putDocument(db, { celsius: 20, _id: "" });
    const named = await putDocument(db, { _id: "line-1", celsius: 21 });
    should(named.id).equal("line-1");
    should(first.id < second.id || first.id.slice(0, 24) === second.id.slice(0, 24)).be.true();
    should(first.id).match(/^\d{4}-\d\d-\d\dT[\d:.]+Z-[0-9a-f]{8}$/);
    should((await db.get(first.id)) as object).containEql({ celsius: 19 });
    should(newDocumentId(new Date(0))).startWith("1970-01-01T00:00:00.000Z-");
  });

  it("does not change the object it was given", async () => {
    const body = { celsius: 19 };
    await putDocument(database(), body);
    should(body).eql({ celsius: 19 });
  });
});
