import should from "should";
import { Identity, isAddress, PeerDirectory, validateKnownPeers, WireError } from "../../lib";

describe("PeerDirectory", () => {
  const press = Identity.generate().deviceId;
  const gateway = Identity.generate().deviceId;
  const directory = new PeerDirectory([
    { id: press, name: "press", address: "127.0.0.1:4001" },
    { id: gateway, name: "gateway" },
  ]);

  it("resolves a peer by id, by name and by an id prefix of 8 or more characters", () => {
    should(directory.resolve(press).name).equal("press");
    should(directory.resolve(press.toUpperCase()).name).equal("press");
    should(directory.resolve("gateway").id).equal(gateway);
    should(directory.resolve(gateway.slice(0, 8)).id).equal(gateway);
  });

  it("resolves a peer by the name it has now, after it was added again under another", () => {
    const renamed = new PeerDirectory([{ id: press, name: "press" }, { id: gateway, name: "twin" }]);
    renamed.add({ id: press, name: "stamp" });
    should(renamed.resolve("stamp").id).equal(press);
    should(() => renamed.resolve("press")).throw(WireError, { code: "UNKNOWN_PEER" });
    renamed.add({ id: press, name: "twin" });
    should(() => renamed.resolve("twin")).throw(WireError, { message: /more than one/ });
    renamed.add({ id: gateway });
    should(renamed.resolve("twin").id).equal(press);
    should(renamed.list()).have.length(2);
  });

  it("says which peer is unknown, and refuses short prefixes", () => {
    should(() => directory.resolve("nobody")).throw(WireError, { code: "UNKNOWN_PEER", message: /"nobody"/ });
    should(() => directory.resolve(gateway.slice(0, 4))).throw(WireError, { code: "UNKNOWN_PEER" });
  });

  it("refuses an ambiguous name", () => {
    const twins = new PeerDirectory([{ id: press, name: "twin" }, { id: gateway, name: "twin" }]);
    should(() => twins.resolve("twin")).throw(WireError, { message: /more than one/ });
  });

  it("validates configured peers and names each problem", () => {
    const { peers, problems } = validateKnownPeers([
      { id: press, name: "press", address: "127.0.0.1:4001" },
      { id: ` ${gateway.toUpperCase()} `, name: "gateway", address: "[::1]:4002" },
      { id: "short", name: "broken" },
      { id: Identity.generate().deviceId, name: "bad-address", address: "no-port" },
      null,
    ]);
    should(peers.map((peer) => peer.name)).eql(["press", "gateway"]);
    should(peers[1].id).equal(gateway);
    should(problems).have.length(3);
    should(problems[0]).match(/peer broken: "short" is not a device id/);
    should(problems[1]).match(/"no-port" is not host:port/);
    should(validateKnownPeers("nonsense").problems).eql(["the known peers must be a list"]);
    should(validateKnownPeers(undefined).peers).eql([]);
  });

  it("accepts host:port addresses only", () => {
    for (const good of ["127.0.0.1:1", "[::1]:65535", "gateway.local:4000"]) should(isAddress(good)).be.true(good);
    for (const bad of ["127.0.0.1", "127.0.0.1:0", "host:70000", ":80", "a b:1", 7]) should(isAddress(bad)).be.false(String(bad));
  });
});
