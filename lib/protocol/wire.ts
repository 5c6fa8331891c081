/** Paths, headers and verbs of the wire; one place so client and server cannot drift apart. */
export const MESSAGE_PATH = "/msg/";
export const STREAM_PATH = "/stream/";
export const BATCH_PATH = "/batch";
/** Pairing requests: the one route open to keys no rule allows yet, since pairing is how they get in. */
export const PAIRING_PATH = "/pair";
/** GET: the statement that moved this device to its key (404 when it never moved): public and self-proving. */
export const ROTATION_PATH = "/rotation";
/** Databases by name under /db/ (CouchDB protocol, e.g. https://host:port/db/readings); the mesh's own at /mesh. */
export const DATABASE_PATH = "/db/";
export const MESH_PATH = "/mesh";
export const BATCH_CONTENT_TYPE = "application/x-peer-mesh-batch";
/** The message channel: one long-lived stream per peer carrying batches as frames (lib/wire/channel.ts). */
export const CHANNEL_PATH = "/channel";
export const CHANNEL_CONTENT_TYPE = "application/x-peer-mesh-channel";
export const HEADER_MESSAGE_ID = "x-peer-mesh-id";
/** A message id is 1 to this many characters (a flow may give its own, e.g. to send again after a restart). */
export const MAX_MESSAGE_ID_CHARS = 128;
export const HEADER_ERROR_CODE = "x-peer-mesh-error";
/** A successful answer is headers only: the ack travels as JSON in this header, with no DATA frame. */
export const HEADER_ACK = "x-peer-mesh-ack";
/**
 * A request: the sender waits up to this many milliseconds for the receiving flow's reply, which comes
 * back as the answer's body (content type as a message's) beside the ack.
 */
export const HEADER_REPLY_WITHIN = "x-peer-mesh-reply-within";
/** The longest a sender may ask a receiver to hold a request open for its reply. */
export const MAX_REPLY_WAIT_MS = 300_000;
/** A reply's body at most; larger answers go as a stream. */
export const MAX_REPLY_BYTES = 1024 * 1024;
/** TLS exporter label (RFC 8446 §7.5) of pairing: both ends of one session derive the same bytes from it. */
export const PAIRING_EXPORTER_LABEL = "EXPORTER-peer-mesh-pairing";

export function topicPath(prefix: string, topic: string): string {
  return prefix + topic.split("/").map(encodeURIComponent).join("/");
}

export function topicFromPath(prefix: string, path: string): string {
  return path.slice(prefix.length).split("/").map(decodeURIComponent).join("/");
}

export type Verb = "send" | "receive" | "read" | "write" | "relay";

/** Decides whether a verified device may perform a verb on a resource (e.g. "msg/factory/line-3"). */
export type Authorizer = (peerId: string, verb: Verb, resource: string) => boolean | Promise<boolean>;

/**
 * An Authorizer asked about a message or stream topic with its kind apart: it must answer as the
 * Authorizer does for `${kind}/${topic}`. Asked at both ends of every message, and cheaper than
 * building the joined string for each.
 */
export type TopicAuthorizer = (peerId: string, verb: Verb, kind: "msg" | "stream", topic: string) => boolean | Promise<boolean>;

/**
 * Runs `then` on an authorizer's decision: at once when it decided synchronously (the ACL does), else
 * when its promise settles. Awaiting a synchronous decision cost each message a microtask turn.
 */
export function onDecision<T>(decision: boolean | Promise<boolean>, then: (allowed: boolean) => T): T | Promise<T> {
  return typeof decision === "boolean" ? then(decision) : decision.then(then);
}

export interface Ack {
  /** The sender's id for this message; the receiver drops repeats of it. */
  id: string;
  topic: string;
  /** How many receivers on the peer accepted it. */
  receivers: number;
  bytes: number;
  duplicate?: boolean;
}

export type DatabaseTarget = { kind: "root" } | { kind: "db"; name: string; segments: string[] } | { kind: "mesh"; segments: string[] };

/** Which database a CouchDB-protocol path addresses, if any; throws on bad percent-encoding. */
export function databaseTarget(path: string): DatabaseTarget | undefined {
  if (path === "/" || path === "/db" || path === DATABASE_PATH) return { kind: "root" };
  const segments = (rest: string): string[] => rest.split("/").filter((part) => part !== "").map(decodeURIComponent);
  if (path === MESH_PATH || path.startsWith(`${MESH_PATH}/`)) return { kind: "mesh", segments: segments(path.slice(MESH_PATH.length)) };
  if (path.startsWith(DATABASE_PATH)) {
    const [name, ...rest] = segments(path.slice(DATABASE_PATH.length));
    return { kind: "db", name, segments: rest };
  }
  return undefined;
}
