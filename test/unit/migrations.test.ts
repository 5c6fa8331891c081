import should from "should";
import { migrate } from "../../nodes/shared/migrations";

describe("migrations of saved node settings", () => {
  interface Def {
    name?: string;
    mdns?: boolean;
    rules?: Array<{ verb: string }>;
  }
  const migrations = [
    { field: "mdns" as const, was: false, why: "came later" },
    { field: "rules" as const, was: [{ verb: "*" }], why: "before the ACL" },
  ];

  it("fills what an old flow lacks with what it meant, and leaves what it has", () => {
    should(migrate<Def>({ name: "old" }, migrations)).eql({ name: "old", mdns: false, rules: [{ verb: "*" }] });
    should(migrate<Def>({ mdns: true, rules: [] }, migrations)).eql({ mdns: true, rules: [] });
  });

  it("never shares a filled-in value between nodes, nor changes the saved settings", () => {
    const saved: Def = {};
    const first = migrate(saved, migrations);
    const second = migrate<Def>({}, migrations);
    first.rules!.push({ verb: "send" });
    should(second.rules).eql([{ verb: "*" }]);
    should(saved).eql({});
  });
});
