import { execFileSync, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import should from "should";
import { Device, Identity, type DeviceOptions, type TorStatus, TorControl, TorTransport, verifyDeviceDoc, type ReceivedMessage } from "../../lib";
import { byteSource, stopAll } from "../helpers/devices";
import { freePort } from "../helpers/ports";
import { torNetworkOrSkip, type TorTestNetwork } from "../helpers/tor-network";
import { parseCircuitStatus, type ClientCircuit } from "../../lib/tor/stalled-rendezvous";
import { transportCompliance } from "../transport-compliance";
import { SocksClient } from "socks";
import { launchTor, stopLaunchedTor } from "../../lib/tor/launch";
import { parseBootstrapPhase } from "../../lib/tor/control";
import { pairClientKey } from "../../lib/tor/client-auth";
import { pairSecret } from "../../lib/discovery/beacons";
import { parsePairingCode } from "../../lib/acl/pairing";

const ONION = /^[a-z2-7]{56}\.onion:443$/;

/** Resolves once the device's Tor status satisfies `test` (bootstrap done, onion published, a failure). */
function torStatus(device: Device, test: (status: TorStatus) => boolean, timeoutMs = 120_000): Promise<TorStatus> {
  const now = device.torStatus;
  if (now && test(now)) return Promise.resolve(now);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      device.off("tor", listener);
      reject(new Error(`Tor status never matched; last: ${JSON.stringify(device.torStatus)}`));
    }, timeoutMs);
    const listener = (status: TorStatus): void => {
      if (!test(status)) return;
      clearTimeout(timer);
      device.off("tor", listener);
      resolve(status);
    };
    device.on("tor", listener);
  });
}

const published = (status: TorStatus): boolean => status.state === "ready" && status.published && !!status.onion;

/** A second control connection to a tor a device launched (its control port and cookie are in its data directory). */
async function controlOf(dataDir: string): Promise<TorControl> {
  const address = /PORT=(\S+)/.exec(await fs.readFile(path.join(dataDir, "control-port"), "utf8"))?.[1];
  if (!address) throw new Error(`no control port in ${dataDir}`);
  return TorControl.connect(address, { cookieDir: dataDir });
}

/** This tor's onion-service client circuits to `service` (56 characters). */
async function circuitsTo(control: TorControl, service: string): Promise<ClientCircuit[]> {
  return parseCircuitStatus(await control.getInfo("circuit-status")).filter((circuit) => circuit.service === service && circuit.purpose.startsWith("HS_CLIENT"));
}

describe("Tor transport on a private Tor network (127.0.0.1 only)", function () {
  this.timeout(300_000);
  let network: TorTestNetwork | undefined;
  let dirs: string[] = [];
  let devices: Device[] = [];

  before(async function () {
    network = await torNetworkOrSkip(this);
  });

  after(async () => {
    await network?.stop();
  });

  afterEach(async () => {
    await stopAll(...devices);
    devices = [];
    await Promise.all(dirs.map((dir) => fs.rm(dir, { recursive: true, force: true })));
    dirs = [];
  });

  async function torDevice(options: Partial<DeviceOptions> & { only?: boolean } = {}): Promise<Device> {
    const storageDir = await fs.mkdtemp(path.join(os.tmpdir(), "peer-mesh-tor-device-"));
    dirs.push(storageDir);
    const { only, ...rest } = options;
    const device = new Device({
      identity: Identity.generate(),
      storageDir,
      ...rest,
      discovery: { staticProbeIntervalMs: 0, ...rest.discovery, tor: { only, launch: { torrc: network!.clientTorrc }, probeIntervalMs: 5_000 } },
    });
    devices.push(device);
    await device.start();
    return device;
  }

  it("two Tor-only devices exchange a message and a stream and replicate a database through onion services", async () => {
    const b = await torDevice({ only: true, databases: ["readings"] });
    const a = await torDevice({ only: true, databases: ["readings"] });
    const [bTor, aTor] = await Promise.all([torStatus(b, published), torStatus(a, published)]);
    should(bTor.onion).match(ONION);
    should(aTor.onion).not.equal(bTor.onion);
    // A knows B by its onion address alone, B knows A by id: Tor is the only way between them.
    a.addKnownPeer({ id: b.id, name: "b", address: bTor.onion! });
    b.addKnownPeer({ id: a.id, name: "a" });

    const received: ReceivedMessage[] = [];
    b.onMessage("readings/#", (message) => void received.push(message));
    const ack = await a.send("b", "readings/temp", { celsius: 21.5 });
    should(ack.receivers).equal(1);
    should(received).have.length(1);
    should(received[0].from.id).equal(a.id);
    should(received[0].payload).eql({ celsius: 21.5 });

    // The probe through Tor reports B as in range via "tor".
    await waitFor(() => a.peerTable.get(b.id)?.transport === "tor", 60_000);

    const digest = createHash("sha256");
    b.onStream("files/#", async (stream) => {
      for await (const chunk of stream.body) digest.update(chunk as Buffer);
    });
    const expected = createHash("sha256");
    const source = byteSource(1024 * 1024);
    source.on("data", (chunk: Buffer) => expected.update(chunk));
    const streamAck = await a.sendStream("b", "files/log", source);
    should(streamAck.bytes).equal(1024 * 1024);
    should(digest.digest("hex")).equal(expected.digest("hex"));

    const docs = Array.from({ length: 200 }, (_, i) => ({ _id: `reading-${String(i).padStart(3, "0")}`, value: i }));
    await a.databases.open("readings").bulkDocs(docs);
    const report = await a.databases.replicate("b", "readings", "push");
    should(report.docsWritten).equal(200);
    const atB = await b.databases.open("readings").allDocs({ include_docs: true });
    should(atB.rows.map((row) => (row.doc as { value?: number }).value)).eql(docs.map((doc) => doc.value));
  });

  it("puts the onion address in the pairing code; pairing through Tor shows both sides the same six digits", async () => {
    const b = await torDevice({ only: true });
    const a = await torDevice({ only: true });
    const bTor = await torStatus(b, published);
    await torStatus(a, (status) => status.state === "ready");
    const code = b.pairing.code();
    should(code).equal(`peer-mesh:${b.id}@${bTor.onion}`);
    const incoming = new Promise<string>((resolve) => b.once("pairing", (request) => resolve(request.sas)));
    const outgoing = await a.pairing.request(code);
    should(outgoing.address).equal(bTor.onion);
    should(outgoing.sas).equal(await incoming);
    const confirmed = await b.pairing.confirm(b.pairing.list()[0].requestId, { group: "paired", sas: outgoing.sas });
    should(confirmed.peer.id).equal(a.id);
  });

  it("publishes the onion address in the signed device document; a peer known by id only reaches the device through it", async () => {
    const b = await torDevice({ only: true });
    const bTor = await torStatus(b, published);
    await waitFor(async () => (await b.systemDatabase!.get<{ onion?: string }>(`dev:${b.id}`)).onion === bTor.onion, 10_000);
    const doc = await b.systemDatabase!.get(`dev:${b.id}`);
    should(verifyDeviceDoc(doc).onion).equal(bTor.onion);
    should(() => verifyDeviceDoc({ ...doc, onion: `${"a".repeat(56)}.onion:443` })).throw(/signature/);

    const a = await torDevice({ only: true });
    await torStatus(a, (status) => status.state === "ready");
    a.addKnownPeer({ id: b.id, name: "b" });
    b.addKnownPeer({ id: a.id, name: "a" });
    await should(a.send("b", "hello", "x")).be.rejectedWith(/no onion address known/);
    // What a mesh sync would bring: B's device document, stored as replication stores it.
    await a.systemDatabase!.bulkDocs({ docs: [doc], new_edits: false } as never);
    await waitFor(() => a.mesh.onionOf(b.id) === bTor.onion, 10_000);
    const got = new Promise<ReceivedMessage>((resolve) => b.onMessage("hello", (message) => void resolve(message)));
    await a.send("b", "hello", "through the onion from the device document");
    should((await got).payload).equal("through the onion from the device document");
  });

  it("comes back with the same onion address after its tor dies holding an introduction, and a waiting connection gets through at once", async () => {
    const b = await torDevice({ only: true });
    const a = await torDevice({ only: true });
    const [bTor] = await Promise.all([torStatus(b, published), torStatus(a, (status) => status.state === "ready")]);
    const service = bTor.onion!.slice(0, 56);
    a.addKnownPeer({ id: b.id, address: bTor.onion! });
    b.addKnownPeer({ id: a.id });
    const received: unknown[] = [];
    b.onMessage("n", (message) => void received.push(message.payload));
    await a.send(b.id, "n", 1);

    // The race a restart can hit: B's introduction point acknowledges A's introduction (it does so once it
    // has relayed it), and B's tor dies before it meets A at the rendezvous point. Made certain here: B's
    // tor is frozen, A's open rendezvous with B is closed, A dials again, then B's tor is killed.
    const bTorrc = path.join(dirs[0], "tor", "data", "torrc");
    const aControl = await controlOf(path.join(dirs[1], "tor", "data"));
    const warnings: string[] = [];
    b.on("warning", (err) => warnings.push(err.message));
    const aWarnings: string[] = [];
    a.on("warning", (err) => aWarnings.push(err.message));
    try {
      execFileSync("pkill", ["-STOP", "-f", bTorrc]);
      for (const circuit of await circuitsTo(aControl, service)) await aControl.command(`CLOSECIRCUIT ${circuit.id}`).catch(() => undefined);
      // Tries again on quick failures (the closed rendezvous may take A's open connection with it), but
      // tor itself keeps every new connection waiting on that rendezvous for about three minutes.
      const deadline = Date.now() + 75_000;
      const delivery = (async (): Promise<string[]> => {
        const errors: string[] = [];
        while (Date.now() < deadline) {
          try {
            await a.send(b.id, "n", 2, { timeoutMs: 20_000 });
            return errors;
          } catch (err) {
            errors.push((err as Error).message);
          }
        }
        throw new Error(`not delivered within 75 s: ${errors.join("; ")}`);
      })();
      await waitFor(async () => (await circuitsTo(aControl, service)).some((circuit) => circuit.hsState === "HSCR_ESTABLISHED_WAITING"), 30_000);
      const failed = torStatus(b, (status) => status.state === "failed", 30_000);
      execFileSync("pkill", ["-KILL", "-f", bTorrc]);
      await failed;
      should(warnings.join("\n")).match(/connection to tor was lost/);
      const back = await torStatus(b, published, 120_000);
      should(back.onion).equal(bTor.onion);
      await delivery;
      should(received).containEql(2);
      should(aWarnings.join("\n")).match(/rendezvous with \S+ waited in vain/);
    } finally {
      spawnSync("pkill", ["-CONT", "-f", bTorrc]); // none left to wake when the kill came
      aControl.close();
    }
  });

  /** A tor of a stranger's, which may hold a client key for `onion`: whether it opens a connection there (SOCKS). */
  async function strangerReaches(onion: string, clientKey?: string): Promise<boolean> {
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), "peer-mesh-tor-stranger-"));
    dirs.push(dataDir);
    const tor = await launchTor({ dataDir, torrc: network!.clientTorrc });
    try {
      await waitFor(async () => parseBootstrapPhase(await tor.control.getInfo("status/bootstrap-phase"))?.progress === 100, 60_000);
      if (clientKey) await tor.control.command(`ONION_CLIENT_AUTH_ADD ${onion.slice(0, 56)} x25519:${clientKey}`);
      const proxy = tor.socksAddress.split(":");
      const { socket } = await SocksClient.createConnection({ proxy: { host: proxy[0], port: Number(proxy[1]), type: 5 }, command: "connect", destination: { host: onion.slice(0, 62), port: 443 }, timeout: 60_000 });
      socket.destroy();
      return true;
    } catch (err) {
      if (!/Socks5 proxy rejected connection/.test((err as Error).message)) throw err;
      return false;
    } finally {
      await stopLaunchedTor(tor);
    }
  }

  /** Counts the device's onion service publications (each upload after a change of the admitted clients). */
  function publications(device: Device): () => number {
    let count = 0;
    let was = false;
    device.on("tor", (status: TorStatus) => {
      if (status.published && !was) count++;
      was = status.published;
    });
    return () => count;
  }

  it("with private discovery, the onion service admits only the device's peers: a stranger's tor cannot open it, not even with the ids-only key once the peer's key is known", async () => {
    const b = await torDevice({ only: true, discovery: { privateDiscovery: true } });
    const a = await torDevice({ only: true, discovery: { privateDiscovery: true } });
    const bPublished = publications(b);
    const [bTor] = await Promise.all([torStatus(b, published), torStatus(a, published)]);
    const bOnion = bTor.onion!;
    // Nobody is admitted yet: a stranger's tor, which knows the address, cannot open a connection (on an open service it can).
    should(await strangerReaches(bOnion)).be.false();

    // A knows B by id and onion address, B knows A by id: neither has seen the other's key, so both use the ids-only key.
    should(bTor.admitted).equal(0);
    b.addKnownPeer({ id: a.id, name: "a" });
    await torStatus(b, (status) => published(status) && status.admitted === 1);
    a.addKnownPeer({ id: b.id, name: "b", address: bOnion });
    const received: unknown[] = [];
    b.onMessage("n", (message) => void received.push(message.payload));
    await a.send(b.id, "n", 1, { timeoutMs: 60_000 });
    should(received).containEql(1);

    // The handshake showed B A's key: B now admits the key only A and B can derive (ECDH), and no longer the
    // ids-only one, which anyone who knows both ids could compute.
    await waitFor(() => !!b.keyOf(a.id) && !!a.keyOf(b.id), 10_000);
    const idsOnly = pairClientKey(pairSecret({ deviceId: a.id, privateKeyObject: Identity.generate().privateKeyObject }, { id: b.id }), b.id).privateKey;
    // Published three times: with nobody, with A's ids-only key, with the pair's key.
    await waitFor(() => bPublished() === 3 && !!b.torStatus?.published, 60_000);
    should(b.torStatus?.admitted).equal(1);
    should(await strangerReaches(bOnion, idsOnly)).be.false();
    // A follows with the pair's key on its next connection.
    await a.stop();
    const a2 = new Device({ identity: a.identity, storageDir: dirs[1], peers: [{ id: b.id, name: "b", address: bOnion }], discovery: { staticProbeIntervalMs: 0, privateDiscovery: true, tor: { only: true, launch: { torrc: network!.clientTorrc }, probeIntervalMs: 5_000 } } });
    devices.push(a2);
    await a2.start();
    await a2.send(b.id, "n", 2, { timeoutMs: 60_000 });
    should(received).containEql(2);
    should(await strangerReaches(bOnion, pairClientKey(pairSecret({ deviceId: Identity.generate().deviceId, privateKeyObject: Identity.generate().privateKeyObject }, { id: b.id }), b.id).privateKey)).be.false();
  });

  it("with private discovery, the pairing code carries a Tor client key: a guest pairs through the onion service that admits nobody else", async () => {
    const acl = { rules: [{ effect: "allow" as const, principal: "group:paired", verb: "*" as const, resource: "*" }] };
    const b = await torDevice({ only: true, acl, discovery: { privateDiscovery: true } });
    const a = await torDevice({ only: true, acl, discovery: { privateDiscovery: true } });
    const [bTor] = await Promise.all([torStatus(b, published), torStatus(a, (status) => status.state === "ready")]);
    const code = b.pairing.code();
    const parsed = parsePairingCode(code);
    should(parsed.addresses).eql([bTor.onion]);
    should(Buffer.from(parsed.onionKey!, "base64")).have.length(32);
    // Without the code's key, the address alone opens nothing.
    should(await strangerReaches(bTor.onion!)).be.false();
    const incoming = new Promise<string>((resolve) => b.once("pairing", (request) => resolve(request.sas)));
    await torStatus(b, (status) => published(status) && status.admitted === 1);
    const outgoing = await a.pairing.request(code);
    const sas = await incoming;
    should(outgoing.sas).equal(sas);
    await b.pairing.confirm(b.pairing.list()[0].requestId, { group: "paired", sas: outgoing.sas });
    await a.pairing.confirm(outgoing.requestId, { group: "paired", sas });
    const got = new Promise<unknown>((resolve) => b.onMessage("hello", (message) => void resolve(message.payload)));
    // B admits A by the pair's key from now on (once published anew).
    await torStatus(b, (status) => published(status) && status.admitted === 2);
    await a.send(b.id, "hello", "paired through Tor", { timeoutMs: 60_000 });
    should(await got).equal("paired through Tor");
  });

  it("attaches to a running tor through its control port and password, and leaves that tor running when the device stops", async () => {
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), "peer-mesh-system-tor-"));
    dirs.push(dataDir);
    await fs.chmod(dataDir, 0o700);
    const hashed = execFileSync("tor", ["--quiet", "--hash-password", "s3cret"]).toString().trim().split("\n").pop()!;
    const controlPort = await freePort();
    const socksPort = await freePort();
    const torrc = [...network!.clientTorrc, `DataDirectory ${dataDir}`, `ControlPort 127.0.0.1:${controlPort}`, `HashedControlPassword ${hashed}`, `SocksPort 127.0.0.1:${socksPort}`, `__OwningControllerProcess ${process.pid}`];
    await fs.writeFile(path.join(dataDir, "torrc"), torrc.join("\n"));
    const systemTor = spawn("tor", ["-f", path.join(dataDir, "torrc"), "--ignore-missing-torrc"], { stdio: "ignore" });
    try {
      await waitFor(async () => TorControl.connect(`127.0.0.1:${controlPort}`, { password: "s3cret" }).then((control) => (control.close(), true), () => false), 30_000);

      const storageDirs = await Promise.all([1, 2].map(() => fs.mkdtemp(path.join(os.tmpdir(), "peer-mesh-tor-device-"))));
      dirs.push(...storageDirs);
      const wrong = new Device({ identity: Identity.generate(), storageDir: storageDirs[0], discovery: { tor: { attach: { controlAddress: `127.0.0.1:${controlPort}`, password: "wrong" }, retryMs: 60_000 } } });
      devices.push(wrong);
      await wrong.start();
      const refused = await torStatus(wrong, (status) => status.state === "failed", 30_000);
      should(refused.error).match(/refused|password/i);

      const device = new Device({ identity: Identity.generate(), storageDir: storageDirs[1], discovery: { tor: { attach: { controlAddress: `127.0.0.1:${controlPort}`, password: "s3cret" } } } });
      devices.push(device);
      await device.start();
      const status = await torStatus(device, published);
      should(status.onion).match(ONION);
      await device.stop();
      should(device.torStatus).containEql({ state: "stopped", published: false });
      // The user's tor keeps running and answering.
      should(systemTor.exitCode).be.null();
      const control = await TorControl.connect(`127.0.0.1:${controlPort}`, { password: "s3cret" });
      try {
        should(await control.getInfo("version")).match(/^0\.4\./);
      } finally {
        control.close();
      }
    } finally {
      systemTor.kill("SIGKILL");
    }
  });

  // The subject's onion service is published once (its tor outlives each test); each test gets a new
  // observing transport with a tor of its own, and the subject "leaves" when its wire listener stops.
  let subject: { identity: Identity; port: number; tor: TorTransport; onion: string; dataDir: string } | undefined;
  after(async () => {
    await subject?.tor.stop();
    if (subject) await fs.rm(subject.dataDir, { recursive: true, force: true });
  });
  transportCompliance("tor (private Tor network)", async () => {
    if (!subject) {
      const identity = Identity.generate();
      const port = await freePort();
      const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), "peer-mesh-tor-subject-"));
      const tor = new TorTransport({ identity, target: `127.0.0.1:${port}`, launch: { dataDir, torrc: network!.clientTorrc } });
      await tor.start();
      const onion = await new Promise<string>((resolve) => {
        const off = tor.onStatus((status) => {
          if (!status.published || !status.onion) return;
          off();
          resolve(status.onion);
        });
      });
      subject = { identity, port, tor, onion, dataDir };
    }
    const { identity, port, onion } = subject;
    let device: Device | undefined;
    const observerIdentity = Identity.generate();
    const observerDir = await fs.mkdtemp(path.join(os.tmpdir(), "peer-mesh-tor-observer-"));
    const observer = new TorTransport({ identity: observerIdentity, target: "127.0.0.1:1", launch: { dataDir: observerDir, torrc: network!.clientTorrc }, entries: [{ address: onion, expectedId: identity.deviceId }], probeIntervalMs: 1_000, probeTimeoutMs: 10_000 });
    return {
      observer,
      observerIdentity,
      subjectId: identity.deviceId,
      async startSubject() {
        device = new Device({ identity, host: "127.0.0.1", port, discovery: { staticProbeIntervalMs: 0 } });
        await device.start();
      },
      async stopSubject() {
        await device?.stop();
        device = undefined;
      },
      foundWithinMs: 90_000,
      lostWithinMs: 15_000,
      async dispose() {
        await device?.stop();
        await fs.rm(observerDir, { recursive: true, force: true });
      },
    };
  });
});

describe("Tor transport without tor", () => {
  it("reports Tor unavailable when the tor binary is missing, and the device works on its other transports", async () => {
    const storageDir = await fs.mkdtemp(path.join(os.tmpdir(), "peer-mesh-tor-device-"));
    const device = new Device({ identity: Identity.generate(), storageDir, discovery: { tor: { launch: { binary: "/nonexistent/tor" } } } });
    try {
      const warned = new Promise<Error>((resolve) => device.once("warning", (err) => resolve(err)));
      await device.start();
      should((await warned).message).match(/Tor is unavailable: tor is not installed/);
      should(device.unavailableTransports).eql([{ name: "tor", reason: 'tor is not installed (no "/nonexistent/tor" on this machine; Debian: apt-get install tor)' }]);
      should(device.pairing.code()).match(/^peer-mesh:[a-z2-7]+@127\.0\.0\.1:\d+$/);
    } finally {
      await device.stop();
      await fs.rm(storageDir, { recursive: true, force: true });
    }
  });

  it("refuses Tor-only settings that would reveal the device another way", () => {
    const identity = Identity.generate();
    should(() => new Device({ identity, storageDir: os.tmpdir(), host: "0.0.0.0", discovery: { tor: { only: true } } })).throw(/listen on 127\.0\.0\.1/);
    should(() => new Device({ identity, storageDir: os.tmpdir(), host: "0.0.0.0", discovery: { mdns: {}, tor: { only: true } } })).throw(/LAN discovery/);
    should(() => new Device({ identity, discovery: { tor: {} } })).throw(/storage directory/);
  });

  it("does not dial an onion address without Tor, and says how to reach it", async () => {
    const device = new Device({ identity: Identity.generate(), peers: [{ id: Identity.generate().deviceId, name: "hidden", address: `${"b".repeat(56)}.onion:443` }] });
    await device.start();
    try {
      await should(device.send("hidden", "t", 1)).be.rejectedWith(/reachable only through Tor .*turn Tor on/);
    } finally {
      await device.stop();
    }
  });
});

async function waitFor(test: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await test()) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}
