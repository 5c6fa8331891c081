import { createHmac } from "node:crypto";
import { promises as fs } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Duplex, PassThrough } from "node:stream";
import should from "should";
import { DeferredDuplex } from "../../lib/discovery/deferred-duplex";
import { Identity, isOnionHostPort, parseBootstrapPhase, TorControl, TorTransport, type TorStatus } from "../../lib";

/** A scripted control port: answers each command line with what `answer` returns, and records the commands. */
async function fakeControlPort(answer: (line: string) => string): Promise<{ address: string; commands: string[]; socket: Promise<net.Socket>; close: () => Promise<void> }> {
  const commands: string[] = [];
  let accepted!: (socket: net.Socket) => void;
  const socket = new Promise<net.Socket>((resolve) => (accepted = resolve));
  const server = net.createServer((connection) => {
    accepted(connection);
    let buffer = "";
    connection.on("data", (chunk) => {
      buffer += chunk.toString();
      let end: number;
      while ((end = buffer.indexOf("\r\n")) >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        commands.push(line);
        if (line !== "QUIT") connection.write(answer(line));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return { address: `127.0.0.1:${port}`, commands, socket, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

describe("tor control protocol client", () => {
  /** What a real tor answers to AUTHCHALLENGE SAFECOOKIE, knowing `cookie` (control-spec 3.24). */
  function safeCookieAnswers(cookie: Buffer, line: string): string | undefined {
    const challenge = /^AUTHCHALLENGE SAFECOOKIE ([0-9a-f]{64})$/.exec(line);
    const serverNonce = Buffer.alloc(32, 0x5a);
    const material = (clientNonce: Buffer): Buffer => Buffer.concat([cookie, clientNonce, serverNonce]);
    if (challenge) {
      const hash = createHmac("sha256", "Tor safe cookie authentication server-to-controller hash").update(material(Buffer.from(challenge[1], "hex"))).digest("hex");
      lastNonce = Buffer.from(challenge[1], "hex");
      return `250 AUTHCHALLENGE SERVERHASH=${hash.toUpperCase()} SERVERNONCE=${serverNonce.toString("hex").toUpperCase()}\r\n`;
    }
    if (line.startsWith("AUTHENTICATE ")) {
      const expected = createHmac("sha256", "Tor safe cookie authentication controller-to-server hash").update(material(lastNonce)).digest("hex");
      return line === `AUTHENTICATE ${expected}` ? "250 OK\r\n" : "515 Authentication failed\r\n";
    }
    return undefined;
  }
  let lastNonce = Buffer.alloc(0);

  it("authenticates by SAFECOOKIE with the cookie file tor names (never sending the cookie), and reads data blocks and async events in between replies", async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "tor-cookie-"));
    const cookie = Buffer.alloc(32, 0xab);
    await fs.writeFile(path.join(dir, "cookie"), cookie);
    const port = await fakeControlPort((line) => {
      if (line === "PROTOCOLINFO 1") return `250-PROTOCOLINFO 1\r\n250-AUTH METHODS=COOKIE,SAFECOOKIE COOKIEFILE="${path.join(dir, "cookie")}"\r\n250-VERSION Tor="0.4.9.11"\r\n250 OK\r\n`;
      const answer = safeCookieAnswers(cookie, line);
      if (answer) return answer;
      if (line === "GETINFO config-text") return "650 STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=75 TAG=enough_dirinfo SUMMARY=\"Loaded enough\"\r\n250+config-text=\r\nSocksPort 9050\r\n..dotted line\r\n.\r\n250 OK\r\n";
      return '552 Unrecognized key "x"\r\n';
    });
    const control = await TorControl.connect(port.address, { cookieDir: dir });
    try {
      const events: string[] = [];
      control.on("event", (line) => events.push(line));
      should(await control.getInfo("config-text")).equal("SocksPort 9050\n.dotted line");
      should(events).eql(['STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=75 TAG=enough_dirinfo SUMMARY="Loaded enough"']);
      await should(control.getInfo("x")).be.rejectedWith(/tor refused: Unrecognized key/);
      should(port.commands[1]).match(/^AUTHCHALLENGE SAFECOOKIE [0-9a-f]{64}$/);
      should(port.commands.join("\n")).not.containEql(cookie.toString("hex"));
    } finally {
      control.close();
      await port.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it("a fake control port learns nothing: a file that is not a 32-byte cookie, one outside tor's data directory, a server that does not know the cookie, and plain COOKIE are all refused before anything of the file is sent", async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "tor-cookie-"));
    const secret = Identity.generate().privateKeyPem;
    await fs.writeFile(path.join(dir, "private-key.pem"), secret);
    const elsewhere = await fs.mkdtemp(path.join(os.tmpdir(), "tor-elsewhere-"));
    await fs.writeFile(path.join(elsewhere, "cookie"), Buffer.alloc(32, 0xcd));
    const offering = (methods: string, file: string, wrongHash = false) =>
      fakeControlPort((line) => {
        if (line === "PROTOCOLINFO 1") return `250-PROTOCOLINFO 1\r\n250-AUTH METHODS=${methods} COOKIEFILE="${file}"\r\n250 OK\r\n`;
        if (line.startsWith("AUTHCHALLENGE ")) return `250 AUTHCHALLENGE SERVERHASH=${(wrongHash ? "00" : "11").repeat(32)} SERVERNONCE=${"22".repeat(32)}\r\n`;
        return "515 Authentication failed\r\n";
      });
    const cases: Array<[string, Awaited<ReturnType<typeof offering>>, RegExp]> = [
      ["a private key named as the cookie", await offering("COOKIE,SAFECOOKIE", path.join(dir, "private-key.pem")), /not a 32-byte cookie/],
      ["a cookie outside the data directory", await offering("SAFECOOKIE", path.join(elsewhere, "cookie")), /not in its data directory/],
      ["a server that cannot prove it knows the cookie", await offering("SAFECOOKIE", path.join(dir, "..", path.basename(dir), "cookie-32")), /does not know tor's cookie/],
      ["plain COOKIE only", await offering("COOKIE", path.join(dir, "cookie-32")), /without SAFECOOKIE/],
    ];
    await fs.writeFile(path.join(dir, "cookie-32"), Buffer.alloc(32, 0xef));
    try {
      for (const [what, port, reason] of cases) {
        await should(TorControl.connect(port.address, { cookieDir: dir })).be.rejectedWith(reason, { message: what } as never);
        should(port.commands.some((line) => line.startsWith("AUTHENTICATE"))).be.false();
        should(port.commands.join("\n")).not.containEql(Buffer.from(secret).toString("hex").slice(0, 32));
      }
    } finally {
      for (const [, port] of cases) await port.close();
      await fs.rm(dir, { recursive: true, force: true });
      await fs.rm(elsewhere, { recursive: true, force: true });
    }
  });

  it("sends the password quoted, says so when tor wants one and none is set, and refuses a command with a line break", async () => {
    const port = await fakeControlPort((line) => {
      if (line === "PROTOCOLINFO 1") return "250-PROTOCOLINFO 1\r\n250-AUTH METHODS=HASHEDPASSWORD\r\n250 OK\r\n";
      if (line === 'AUTHENTICATE "pa\\"ss"') return "250 OK\r\n";
      return "515 Authentication failed: Password did not match HashedControlPassword value from configuration\r\n";
    });
    try {
      await should(TorControl.connect(port.address)).be.rejectedWith(/asks for a password/);
      await should(TorControl.connect(port.address, { password: "wrong" })).be.rejectedWith(/Password did not match/);
      const control = await TorControl.connect(port.address, { password: 'pa"ss' });
      await should(control.command("GETINFO version\r\nSIGNAL SHUTDOWN")).be.rejectedWith(/one line/);
      should(port.commands).not.containEql("SIGNAL SHUTDOWN");
      control.close();
    } finally {
      await port.close();
    }
  });

  it("fails waiting commands when tor goes away, and says which port could not be reached", async () => {
    const port = await fakeControlPort((line) => (line === "PROTOCOLINFO 1" ? "250-AUTH METHODS=NULL\r\n250 OK\r\n" : line === "AUTHENTICATE" ? "250 OK\r\n" : ""));
    const control = await TorControl.connect(port.address);
    const closed = new Promise<void>((resolve) => control.once("close", () => resolve()));
    const waiting = control.command("GETINFO version");
    (await port.socket).destroy();
    await should(waiting).be.rejectedWith(/control connection closed/);
    await closed;
    await port.close();
    await should(TorControl.connect(port.address, { timeoutMs: 2_000 })).be.rejectedWith(/cannot reach tor's control port/);
  });

  it("parses bootstrap phases, with quoted summaries and warnings", () => {
    should(parseBootstrapPhase('NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"')).eql({ progress: 100, tag: "done", summary: "Done" });
    should(parseBootstrapPhase('WARN BOOTSTRAP PROGRESS=10 TAG=conn_done SUMMARY="Connected to a relay" WARNING="Connection refused" REASON=CONNECTREFUSED')).eql({
      progress: 10,
      tag: "conn_done",
      summary: "Connected to a relay",
      warning: "Connection refused",
    });
    should(parseBootstrapPhase("NOTICE CIRCUIT_ESTABLISHED")).be.undefined();
  });

  it("tells onion addresses from others", () => {
    should(isOnionHostPort(`${"a".repeat(56)}.onion:443`)).be.true();
    should(isOnionHostPort(`${"a".repeat(16)}.onion:443`)).be.false(); // v2: gone from tor
    should(isOnionHostPort(`${"a".repeat(56)}.onion`)).be.false();
    should(isOnionHostPort("192.168.1.4:443")).be.false();
  });
});

describe("DeferredDuplex", () => {
  it("holds writes until the connection opens, then passes both ways", async () => {
    let open!: (inner: Duplex) => void;
    const duplex = new DeferredDuplex(new Promise((resolve) => (open = resolve)));
    duplex.write("early ");
    duplex.write("bytes");
    const written: Buffer[] = [];
    const inner = new Duplex({
      write(chunk: Buffer, _encoding, callback) {
        written.push(chunk);
        callback();
      },
      read() {},
    });
    await new Promise((resolve) => setImmediate(resolve));
    should(written).be.empty(); // nothing leaves before the connection exists
    open(inner);
    await new Promise((resolve) => setImmediate(resolve));
    should(Buffer.concat(written).toString()).equal("early bytes");
    inner.push("answer");
    const chunk = await new Promise<Buffer>((resolve) => duplex.once("data", resolve));
    should(chunk.toString()).equal("answer");
    duplex.destroy();
    await new Promise((resolve) => setImmediate(resolve));
    should(inner.destroyed).be.true();
  });

  it("fails with the opening's error, and closes a connection that opens after it was destroyed", async () => {
    const failed = new DeferredDuplex(Promise.reject(new Error("Tor could not reach it")));
    const err = await new Promise<Error>((resolve) => failed.once("error", resolve));
    should(err.message).equal("Tor could not reach it");

    let open!: (inner: PassThrough) => void;
    const late = new DeferredDuplex(new Promise((resolve) => (open = resolve)));
    late.destroy();
    const inner = new PassThrough();
    open(inner);
    await new Promise((resolve) => setImmediate(resolve));
    should(inner.destroyed).be.true();
  });
});

describe("onion service publication", () => {
  const SERVICE = "a".repeat(56);
  /** A tor attached by its control port, bootstrapped, that adds the service and then says what the test writes. */
  async function attachedTransport(uploadsSettleMs?: number): Promise<{ transport: TorTransport; event: (line: string) => Promise<TorStatus>; close: () => Promise<void> }> {
    const port = await fakeControlPort((line) => {
      if (line === "PROTOCOLINFO 1") return "250-PROTOCOLINFO 1\r\n250-AUTH METHODS=HASHEDPASSWORD\r\n250 OK\r\n";
      if (line === "GETINFO net/listeners/socks") return '250-net/listeners/socks="127.0.0.1:9"\r\n250 OK\r\n';
      if (line === "GETINFO status/bootstrap-phase") return '250-status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"\r\n250 OK\r\n';
      if (line.startsWith("ADD_ONION ")) return `250-ServiceID=${SERVICE}\r\n250-PrivateKey=ED25519-V3:AAAA\r\n250 OK\r\n`;
      return "250 OK\r\n";
    });
    const transport = new TorTransport({ identity: Identity.generate(), target: "127.0.0.1:1", attach: { controlAddress: port.address, password: "x" }, uploadsSettleMs });
    const added = new Promise<void>((resolve) => {
      const off = transport.onStatus((status) => {
        if (status.onion === undefined) return;
        off();
        resolve();
      });
    });
    await transport.start();
    await added;
    const socket = await port.socket;
    let marks = 0;
    /** Writes an event and reads the status once the transport has read it: a bootstrap summary written after it marks that. */
    const event = async (line: string): Promise<TorStatus> => {
      const mark = `read ${++marks}`;
      const read = new Promise<void>((resolve) => {
        const off = transport.onStatus((status) => {
          if (status.summary !== mark) return;
          off();
          resolve();
        });
      });
      socket.write(`650 ${line}\r\n650 STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="${mark}"\r\n`);
      await read;
      return transport.status;
    };
    return { transport, event, close: async () => (await transport.stop(), await port.close()) };
  }
  const upload = (directory: string, descriptor: string): string => `HS_DESC UPLOAD ${SERVICE} UNKNOWN $${directory}~relay ${descriptor} HSDIR_INDEX=00`;
  const answer = (action: "UPLOADED" | "FAILED", directory: string): string => `HS_DESC ${action} ${SERVICE} UNKNOWN $${directory}~relay${action === "FAILED" ? " REASON=UPLOAD_REJECTED" : ""}`;

  it("counts the service published once every directory sent the new descriptor answered, not at the first (a guest asking a directory still holding the old one fails)", async () => {
    const { event, close } = await attachedTransport();
    try {
      for (const directory of ["D1", "D2", "D3"]) for (const descriptor of ["current", "next"]) await event(upload(directory, descriptor));
      // An answer to an upload from before this descriptor was added is not one of its answers.
      should((await event(answer("UPLOADED", "D9"))).published).be.false();
      should((await event(answer("UPLOADED", "D1"))).published).be.false();
      should((await event(answer("UPLOADED", "D1"))).published).be.false();
      should((await event(answer("FAILED", "D2"))).published).be.false();
      should((await event(answer("UPLOADED", "D2"))).published).be.false();
      should((await event(answer("UPLOADED", "D3"))).published).be.false();
      should((await event(answer("UPLOADED", "D3"))).published).be.true();
    } finally {
      await close();
    }
  });

  it("counts it published a while after the first directory took it when another never answers, and never when none took it", async () => {
    const { transport, event, close } = await attachedTransport(300);
    try {
      await event(upload("D1", "current"));
      await event(upload("D2", "current"));
      should((await event(answer("FAILED", "D1"))).published).be.false();
      await new Promise((resolve) => setTimeout(resolve, 400));
      should(transport.status.published).be.false();
      should((await event(answer("UPLOADED", "D2"))).published).be.true();
    } finally {
      await close();
    }
    const second = await attachedTransport(300);
    try {
      await second.event(upload("D1", "current"));
      await second.event(upload("D2", "current"));
      const settled = Date.now();
      const published = new Promise<void>((resolve) => {
        const off = second.transport.onStatus((status) => {
          if (!status.published) return;
          off();
          resolve();
        });
      });
      should((await second.event(answer("UPLOADED", "D1"))).published).be.false();
      await published;
      should(Date.now() - settled).be.aboveOrEqual(250); // not at the first answer: after the settle time (300 ms)
    } finally {
      await second.close();
    }
  });
});
