/** Paths and headers of the wire; one place so client and server cannot drift apart. */
export const MESSAGE_PATH = "/msg/";
export const STREAM_PATH = "/stream/";
export const BATCH_PATH = "/batch";
/** Pairing requests: the one route open to keys no rule allows yet, since pairing is how they get in. */
export const PAIRING_PATH = "/pair";
export const BATCH_CONTENT_TYPE = "application/x-peer-mesh-batch";
export const HEADER_MESSAGE_ID = "x-peer-mesh-id";
export const HEADER_ERROR_CODE = "x-peer-mesh-error";
/** A successful answer is headers only: the ack travels as JSON in this header, with no DATA frame. */
export const HEADER_ACK = "x-peer-mesh-ack";

export function topicPath(prefix: string, topic: string): string {
  return prefix + topic.split("/").map(encodeURIComponent).join("/");
}

export function topicFromPath(prefix: string, path: string): string {
  return path.slice(prefix.length).split("/").map(decodeURIComponent).join("/");
}

export type Verb = "send" | "receive" | "read" | "write" | "relay";

/** Decides whether a verified device may perform a verb on a resource (e.g. "msg/factory/line-3"). */
export type Authorizer = (peerId: string, verb: Verb, resource: string) => boolean | Promise<boolean>;

export interface Ack {
  /** The sender's id for this message; the receiver drops repeats of it. */
  id: string;
  topic: string;
  /** How many receivers on the peer accepted it. */
  receivers: number;
  bytes: number;
  duplicate?: boolean;
}
