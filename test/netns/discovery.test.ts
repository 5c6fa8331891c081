import { execFile } from "node:child_process";
import path from "node:path";
import should from "should";
import { compiled, ipcEvents, TEST_INTERFACE } from "./harness";
import { waitFor } from "../helpers/events";
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

  it("private discovery: known peers find each other by beacons, while a stranger on the segment hears no id, name or value that outlives its epoch", async () => {
    const [a, b, c, stranger] = hosts(4);
    const devices = [a, b, c];
    const listener = testHosts.network.spawnNode(stranger.host, compiled("mdns-listener.js"), [stranger.host.address]);
    const heard = ipcEvents(listener);
    const packets: Array<{ at: number; text: string }> = [];
    heard.on("packet", (packet: { at: number; hex: string }) => packets.push({ at: packet.at, text: Buffer.from(packet.hex, "hex").toString("latin1") }));
    await waitFor(heard, "listening", () => true, 5_000, "the stranger's mDNS listener");
    const epochMs = 2_500;
    const known = (self: HostDevice) => devices.filter((d) => d !== self).map((d) => ({ id: d.id, name: d.name }));
    for (const device of devices) await device.launch({ peers: known(device), mdns: { interface: TEST_INTERFACE, ...timing }, privateDiscovery: { epochMs } });
    const delays: number[] = [];
    for (const observer of devices) {
      for (const peer of devices.filter((other) => other !== observer)) {
        const found = await observer.peerEvent("found", peer.id, 5_000);
        should(found.peer).containEql({ transport: "mdns", verified: false });
        delays.push(found.at - Math.max(peer.startedAt, observer.startedAt));
      }
    }
    // Across three epoch changes, while the devices talk: each device's new names and beacons, and not one "lost" on the way.
    const watchedFrom = Date.now();
    const talked: Array<Awaited<ReturnType<HostDevice["send"]>>> = [];
    while (Date.now() - watchedFrom < epochMs * 3) {
      const [from, to] = talked.length % 2 ? [b, a] : [a, c];
      talked.push(await from.send(to.id, "private/hello", { ok: true }));
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    listener.kill();
    // The beacons led somewhere real: each message by id reached the private listener they found.
    should(talked.length).be.above(5);
    for (const sent of talked) {
      should(sent.error).be.undefined();
      should(sent.ack?.receivers).equal(1);
    }
    console.log(`      time to find (ms, 6 pairs): ${delays.join(", ")}; ${packets.length} packets heard by the stranger`);
    should(Math.max(...delays)).be.below(timing.announceIntervalMs * 2);
    for (const device of devices) should(device.peerEvents.filter((e) => e.event === "lost" && e.at >= watchedFrom)).eql([]);

    should(packets.length).be.above(10);
    for (const device of devices) {
      for (const packet of packets) {
        should(packet.text).not.containEql(device.id.slice(0, 8));
        should(packet.text).not.containEql(device.name);
      }
    }
    // Every instance name and beacon is heard within one epoch (and the announcement interval it takes to switch).
    const spans = new Map<string, { first: number; last: number }>();
    for (const packet of packets) {
      const values = [...packet.text.matchAll(/pm-[0-9a-f]{16}|b\d+=[A-Za-z0-9+/]+=*/g)].map((match) => match[0]);
      for (const value of values) {
        const span = spans.get(value) ?? { first: packet.at, last: packet.at };
        span.last = packet.at;
        spans.set(value, span);
      }
    }
    const names = [...spans.keys()].filter((value) => value.startsWith("pm-"));
    should(names.length).be.aboveOrEqual(devices.length * 3);
    const longest = Math.max(...[...spans.values()].map((span) => span.last - span.first));
    console.log(`      ${names.length} instance names and ${spans.size - names.length} beacon values; the longest heard for ${longest} ms (epoch ${epochMs} ms)`);
    should(longest).be.belowOrEqual(epochMs + timing.announceIntervalMs * 2);
  });

  it("private discovery: a peer added while running (a pairing) is announced for at once, not from the next 10-minute window on", async () => {
    const [a, late] = hosts(2);
    const privately = { mdns: { interface: TEST_INTERFACE, ...timing }, privateDiscovery: { epochMs: 600_000 } };
    await a.launch({ peers: [], ...privately });
    await late.launch({ peers: [{ id: a.id, name: a.name }], ...privately });
    await new Promise((resolve) => setTimeout(resolve, timing.announceIntervalMs * 3));
    should(late.peerEvents.filter((e) => e.event === "found" && e.peer.id === a.id)).eql([]);
    const addedAt = Date.now();
    await a.request({ type: "add-peer", peer: { id: late.id, name: late.name } });
    const found = await late.peerEvent("found", a.id, 5_000, addedAt);
    console.log(`      found ${found.at - addedAt} ms after the peer was added`);
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
