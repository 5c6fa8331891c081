import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { EventEmitter } from "node:events";
import { promises as fs } from "node:fs";
import net from "node:net";
import path from "node:path";
import { splitAddress } from "../protocol/address";

/** One reply of tor's control protocol: its status code and its lines (data blocks joined with "\n"). */
export interface ControlReply {
  code: number;
  lines: string[];
}

export class TorControlError extends Error {
  constructor(message: string, readonly code?: number) {
    super(message);
    this.name = "TorControlError";
  }
}

export interface TorControlEvents {
  /** An asynchronous event (650) such as "STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=50 ...". */
  event: [line: string];
  /** The connection to tor ended (tor exited, or close() was called). */
  close: [err?: Error];
}

interface Pending {
  resolve: (reply: ControlReply) => void;
  reject: (err: Error) => void;
}

const MAX_REPLY_BYTES = 1024 * 1024;

/**
 * A client of tor's control port (control-spec.txt): authenticates, sends one command at a time and
 * reads replies and asynchronous events. Hand-written because the protocol is a few line rules and no
 * maintained Node.js library for it exists (granax and tor-control are abandoned).
 */
export class TorControl extends EventEmitter<TorControlEvents> {
  private buffer = "";
  private lines: string[] = [];
  private data?: { key: string; lines: string[] };
  private readonly queue: Pending[] = [];
  private closed = false;

  private constructor(private readonly socket: net.Socket) {
    super();
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => this.receive(chunk));
    socket.on("error", (err) => this.shut(err));
    socket.on("close", () => this.shut());
  }

  /**
   * Connects to a control port ("host:port") and authenticates with a password, tor's cookie (SAFECOOKIE
   * only) or nothing, as tor offers. `cookieDir`: the cookie file must lie in this directory (the data
   * directory of a tor this device started).
   */
  static async connect(address: string, auth: { password?: string; timeoutMs?: number; cookieDir?: string } = {}): Promise<TorControl> {
    const { host, port } = splitAddress(address);
    const socket = net.connect({ host, port });
    const timeoutMs = auth.timeoutMs ?? 10_000;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new TorControlError(`no answer from tor's control port ${address} within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once("connect", () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once("error", (err) => {
        clearTimeout(timer);
        reject(new TorControlError(`cannot reach tor's control port ${address}: ${err.message}`));
      });
    });
    const control = new TorControl(socket);
    try {
      await control.authenticate(auth.password, auth.cookieDir);
    } catch (err) {
      control.close();
      throw err;
    }
    return control;
  }

  private async authenticate(password: string | undefined, cookieDir: string | undefined): Promise<void> {
    const info = await this.command("PROTOCOLINFO 1");
    const authLine = info.lines.find((line) => line.startsWith("AUTH "));
    const methods = /METHODS=(\S+)/.exec(authLine ?? "")?.[1].split(",") ?? [];
    const cookieFile = /COOKIEFILE=("(?:[^"\\]|\\.)*")/.exec(authLine ?? "")?.[1];
    if (password !== undefined && password !== "" && methods.includes("HASHEDPASSWORD")) {
      await this.command(`AUTHENTICATE ${quote(password)}`);
    } else if (methods.includes("NULL")) {
      await this.command("AUTHENTICATE");
    } else if (methods.includes("SAFECOOKIE") && cookieFile) {
      await this.authenticateSafeCookie(await readCookie(unquote(cookieFile), cookieDir));
    } else if (methods.includes("COOKIE")) {
      // Plain COOKIE sends the file's bytes to whoever answers on the port: a fake control port could name any file.
      throw new TorControlError("tor's control port offers cookie authentication without SAFECOOKIE, which this client does not use (it would send the cookie itself); set a password");
    } else if (methods.includes("HASHEDPASSWORD")) {
      throw new TorControlError("tor's control port asks for a password; set one in the identity's Tor settings");
    } else {
      throw new TorControlError(`tor's control port offers no authentication this client supports (${methods.join(", ") || "none"})`);
    }
  }

  /**
   * SAFECOOKIE (control-spec 3.24): tor proves it knows the cookie before this client answers, and the
   * answer is an HMAC bound to both nonces, so neither the cookie nor anything replayable leaves here.
   */
  private async authenticateSafeCookie(cookie: Buffer): Promise<void> {
    const clientNonce = randomBytes(32);
    const reply = await this.command(`AUTHCHALLENGE SAFECOOKIE ${clientNonce.toString("hex")}`);
    const line = reply.lines.find((entry) => entry.startsWith("AUTHCHALLENGE ")) ?? "";
    const serverHash = /SERVERHASH=([0-9A-Fa-f]{64})/.exec(line)?.[1];
    const serverNonce = /SERVERNONCE=([0-9A-Fa-f]{64})/.exec(line)?.[1];
    if (!serverHash || !serverNonce) throw new TorControlError("tor's control port answered AUTHCHALLENGE without a server hash and nonce");
    const material = Buffer.concat([cookie, clientNonce, Buffer.from(serverNonce, "hex")]);
    const expected = createHmac("sha256", SAFECOOKIE_SERVER_KEY).update(material).digest();
    if (!timingSafeEqual(expected, Buffer.from(serverHash, "hex"))) {
      throw new TorControlError("the control port does not know tor's cookie: it is not the tor it claims to be");
    }
    await this.command(`AUTHENTICATE ${createHmac("sha256", SAFECOOKIE_CLIENT_KEY).update(material).digest("hex")}`);
  }

  /** Sends one command line; resolves with its reply, rejects on a 4xx/5xx reply or a lost connection. */
  command(line: string): Promise<ControlReply> {
    if (this.closed) return Promise.reject(new TorControlError("the connection to tor's control port is closed"));
    if (/[\r\n]/.test(line)) return Promise.reject(new TorControlError("a control command is one line"));
    return new Promise((resolve, reject) => {
      this.queue.push({ resolve, reject });
      this.socket.write(`${line}\r\n`);
    });
  }

  /** GETINFO of one key; the value without its "key=" prefix. */
  async getInfo(key: string): Promise<string> {
    const reply = await this.command(`GETINFO ${key}`);
    const line = reply.lines.find((entry) => entry.startsWith(`${key}=`));
    if (line === undefined) throw new TorControlError(`tor did not answer GETINFO ${key}`);
    return line.slice(key.length + 1);
  }

  /** tor's first SOCKS listener ("127.0.0.1:9050"), or undefined when it has none (SocksPort 0). */
  async socksAddress(): Promise<string | undefined> {
    const first = (await this.getInfo("net/listeners/socks")).split(" ")[0] ?? "";
    return first.replace(/^"|"$/g, "") || undefined;
  }

  close(): void {
    if (this.closed) return;
    this.socket.end("QUIT\r\n");
    this.socket.destroySoon();
    this.shut();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private shut(err?: Error): void {
    if (this.closed && this.queue.length === 0) return;
    const wasClosed = this.closed;
    this.closed = true;
    for (const pending of this.queue.splice(0)) pending.reject(new TorControlError(`tor's control connection closed${err ? `: ${err.message}` : ""}`));
    if (!wasClosed) this.emit("close", err);
  }

  private receive(chunk: string): void {
    this.buffer += chunk;
    if (this.buffer.length > MAX_REPLY_BYTES) {
      this.socket.destroy();
      return this.shut(new TorControlError("tor's control port sent an over-long reply"));
    }
    let end: number;
    while ((end = this.buffer.indexOf("\r\n")) >= 0) {
      const line = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      this.line(line);
    }
  }

  /** Reply grammar: "250-..." mid line, "250+key=" opens a data block ending at ".", "250 ..." ends the reply. */
  private line(line: string): void {
    if (this.data) {
      if (line === ".") {
        this.lines.push(`${this.data.key}${this.data.lines.join("\n")}`);
        this.data = undefined;
      } else {
        this.data.lines.push(line.startsWith("..") ? line.slice(1) : line);
      }
      return;
    }
    const code = Number(line.slice(0, 3));
    const separator = line[3];
    const text = line.slice(4);
    if (separator === "+") {
      this.data = { key: text, lines: [] };
      return;
    }
    this.lines.push(text);
    if (separator !== " ") return;
    const lines = this.lines;
    this.lines = [];
    if (code === 650) {
      this.emit("event", lines.join("\n"));
      return;
    }
    const pending = this.queue.shift();
    if (!pending) return;
    if (!(code >= 200 && code < 400)) pending.reject(new TorControlError(`tor refused: ${lines.join(" ")}`, code));
    else pending.resolve({ code, lines });
  }
}

/** A control-protocol QuotedString. */
export function quote(text: string): string {
  return `"${text.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

function unquote(text: string): string {
  return text.slice(1, -1).replace(/\\(.)/g, "$1");
}

/** Bootstrap progress as tor reports it ("NOTICE BOOTSTRAP PROGRESS=50 TAG=loading_descriptors SUMMARY=\"...\""). */
export interface BootstrapPhase {
  progress: number;
  tag: string;
  summary: string;
  /** Set when tor reports a problem while bootstrapping (BOOTSTRAP ... WARNING=...). */
  warning?: string;
}

export function parseBootstrapPhase(text: string): BootstrapPhase | undefined {
  const progress = /PROGRESS=(\d+)/.exec(text);
  if (!progress) return undefined;
  const field = (name: string): string | undefined => {
    const match = new RegExp(`${name}=("(?:[^"\\\\]|\\\\.)*"|\\S+)`).exec(text);
    if (!match) return undefined;
    return match[1].startsWith('"') ? unquote(match[1]) : match[1];
  };
  const warning = field("WARNING");
  return { progress: Number(progress[1]), tag: field("TAG") ?? "", summary: field("SUMMARY") ?? "", ...(warning ? { warning } : {}) };
}

const SAFECOOKIE_SERVER_KEY = "Tor safe cookie authentication server-to-controller hash";
const SAFECOOKIE_CLIENT_KEY = "Tor safe cookie authentication controller-to-server hash";
const COOKIE_BYTES = 32;

/** tor's cookie: exactly 32 bytes, and inside `dir` when this device knows tor's data directory. */
async function readCookie(file: string, dir: string | undefined): Promise<Buffer> {
  let real: string;
  try {
    real = await fs.realpath(file);
    if (dir !== undefined) {
      const realDir = await fs.realpath(dir);
      if (!real.startsWith(realDir + path.sep)) throw new TorControlError(`tor names the cookie file ${file}, which is not in its data directory ${dir}`);
    }
    const stat = await fs.stat(real);
    if (!stat.isFile() || stat.size !== COOKIE_BYTES) throw new TorControlError(`tor names the cookie file ${file}, which is not a ${COOKIE_BYTES}-byte cookie`);
    return await fs.readFile(real);
  } catch (err) {
    if (err instanceof TorControlError) throw err;
    throw new TorControlError(`tor asks for its cookie file, which this process cannot read: ${(err as Error).message}`);
  }
}
