import { execFile } from "node:child_process";
import path from "node:path";
import should from "should";
import { compiled, TEST_INTERFACE } from "./harness";
import { HostDevice, useTestHosts } from "./host-device";

const timing = { announceIntervalMs: 500, expireMs: 2_000 };

describe("mDNS discovery across test hosts (network namespaces)", function () {
  const testHosts = useTestHosts();
  const hosts = (count: number): HostDevice[] => testHosts.hosts(count);

  it("3 hosts find each other, each in under a second of the other starting", async () => {
    const all = hosts(3);
    for (const device of all) await device.start([], timing);
    const delays: number[] = [];
    for (const observer of all) {
      for (const peer of all.filter((other) => other !== observer)) {
        const found = await observer.peerEvent("found", peer.id, 5_000);
        should(found.peer).containEql({ transport: "mdns", name: peer.name, trusted: false, verified: false });
        should(found.peer.address).equal(`${peer.host.address}:${found.peer.address.split(":")[1]}`);
        delays.push(found.at - Math.max(peer.startedAt, observer.startedAt));
      }
    }
    console.log(`      time to find (ms, 6 pairs): ${delays.join(", ")}`);
    should(Math.max(...delays)).be.below(timing.announceIntervalMs * 2);
  });

  it("sees a clean stop as lost at once, from the goodbye, long before the record would expire", async () => {
    const [a, b] = hosts(2);
    const slow = { announceIntervalMs: 500, expireMs: 20_000 };
    await a.start([], slow);
    await b.start([], slow);
    await a.peerEvent("found", b.id, 5_000);
    const stoppedAt = await b.stop();
    const lost = await a.peerEvent("lost", b.id, slow.expireMs / 4, stoppedAt);
    console.log(`      lost after a clean stop: ${lost.at - stoppedAt} ms (expiry ${slow.expireMs} ms)`);
  });

  it("sees a killed process as lost within the expiry", async () => {
    const [a, b] = hosts(2);
    await a.start([], timing);
    await b.start([], timing);
    await a.peerEvent("found", b.id, 5_000);
    const killedAt = await b.kill();
    const lost = await a.peerEvent("lost", b.id, timing.expireMs + timing.announceIntervalMs * 2, killedAt);
    console.log(`      lost after SIGKILL: ${lost.at - killedAt} ms (expiry ${timing.expireMs} ms)`);
    should(lost.at - killedAt).be.aboveOrEqual(timing.expireMs - timing.announceIntervalMs);
  });

  it("reports lost when a link goes down and found again when it comes back", async () => {
    const [a, b] = hosts(2);
    await a.start([], timing);
    await b.start([], timing);
    await a.peerEvent("found", b.id, 5_000);
    const downAt = Date.now();
    testHosts.network.linkDown(b.host);
    await a.peerEvent("lost", b.id, timing.expireMs * 2, downAt);
    await b.peerEvent("lost", a.id, timing.expireMs * 2, downAt);
    const upAt = Date.now();
    testHosts.network.linkUp(b.host);
    await a.peerEvent("found", b.id, timing.expireMs * 2, upAt);
    await b.peerEvent("found", a.id, timing.expireMs * 2, upAt);
  });

  it("delivers a message sent by device id to a host it knows only by key, with no address configured", async () => {
    const [a, b, c] = hosts(3);
    // Each knows the others' keys (trust) but no address: discovery supplies those.
    const known = (self: HostDevice) => [a, b, c].filter((d) => d !== self).map((d) => ({ id: d.id, name: d.name }));
    await b.start(known(b), timing);
    await c.start(known(c), timing);
    await a.start(known(a), timing);
    await a.peerEvent("found", c.id, 5_000);
    const received = c.nextMessage("line/3/alarm", 10_000);
    const result = await a.send(c.id, "line/3/alarm", { level: "high" });
    should(result.error).be.undefined();
    should(result.ack?.receivers).equal(1);
    const [message] = await received;
    should(message).containEql({ from: a.id, payload: { level: "high" } });
    const trusted = a.peerEvents.find((e) => e.peer.id === c.id);
    should(trusted?.peer).containEql({ trusted: true, name: "host3" });
  });

  it("the mDNS transport passes the transport compliance suite inside a test host", async function () {
    testHosts.hosts(1);
    const [host] = testHosts.network.hosts;
    const mocha = path.join(process.cwd(), "node_modules", "mocha", "bin", "mocha.js");
    const suite = compiled(path.join("inside", "mdns-compliance.js"));
    const output = await new Promise<string>((resolve, reject) => {
      execFile(
        "ip",
        ["netns", "exec", host.namespace, process.execPath, mocha, "--no-config", "--timeout", "30000", "--reporter", "dot", suite],
        { env: { ...process.env, PEER_MESH_TEST_INTERFACE: TEST_INTERFACE }, timeout: 120_000 },
        (err, stdout, stderr) => (err ? reject(new Error(`${stdout}\n${stderr}`)) : resolve(stdout)),
      );
    });
    should(output).match(/(\d+) passing/);
    should(output).not.match(/failing|pending/);
    console.log(`      inside ${host.namespace}: ${/(\d+) passing/.exec(output)![0]}`);
  });
});
