import { WireError, type WireErrorCode } from "../protocol/errors";
import { type Ack, MAX_MESSAGE_ID_CHARS } from "../protocol/wire";
import { type BatchItem, type BatchOutcome, MAX_ITEM_HEADER_BYTES } from "./batch";

/**
 * The message channel's frame bodies, in binary. A /batch request carries each message's id, topic and
 * content type as JSON and gets its outcomes back as JSON; on the channel, JSON's encoding and parsing at
 * both ends took about 2 µs of CPU a message, a sixth of a message's whole cost. The channel (new in this
 * release) therefore carries the same fields as lengths and bytes, and an ack as the receivers' count and
 * a flag: the sender knows the id, topic and size of what it sent.
 *
 * A batch: per message [u16 id bytes][id][u16 topic bytes][topic][u8 content type bytes][content type]
 * [u32 body bytes][body]; ids, topics and content types in UTF-8.
 * Its outcomes, one per message in order: [u8 0][u32 receivers][u8 1 if a duplicate, else 0] for an ack,
 * [u8 1][u16 HTTP status][u8 code bytes][code][u16 reason bytes][reason] for a refusal.
 */

const ACK = 0;
const FAILURE = 1;
/** A refusal's reason is cut to this many characters (at most 3 bytes each in UTF-8: under u16). */
const MAX_REASON_CHARS = 4096;

export function encodeItems(items: BatchItem[]): Buffer {
  const lengths = new Array<number>(items.length * 3);
  let total = 0;
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    const id = (lengths[3 * i] = Buffer.byteLength(item.id));
    const topic = (lengths[3 * i + 1] = Buffer.byteLength(item.topic));
    const contentType = (lengths[3 * i + 2] = Buffer.byteLength(item.contentType));
    if (id > 0xffff || topic > 0xffff || contentType > 0xff) throw new WireError("BAD_REQUEST", "a message's id, topic or content type is too long for the message channel");
    total += 9 + id + topic + contentType + item.body.length;
  }
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    at = out.writeUInt16BE(lengths[3 * i], at);
    at += out.write(item.id, at, "utf8");
    at = out.writeUInt16BE(lengths[3 * i + 1], at);
    at += out.write(item.topic, at, "utf8");
    at = out.writeUInt8(lengths[3 * i + 2], at);
    at += out.write(item.contentType, at, "utf8");
    at = out.writeUInt32BE(item.body.length, at);
    at += item.body.copy(out, at);
  }
  return out;
}

/** The messages of a batch frame; a frame that is cut short or malformed anywhere is refused whole (BAD_REQUEST). */
export function decodeItems(buffer: Buffer, maxItems: number): BatchItem[] {
  const items: BatchItem[] = [];
  const reader = new Reader(buffer, (what) => new WireError("BAD_REQUEST", `the batch is cut short in item ${items.length + 1} (${what})`));
  while (!reader.done) {
    if (items.length >= maxItems) throw new WireError("BAD_REQUEST", `a batch holds at most ${maxItems} messages`);
    const headerStart = reader.at;
    const id = reader.text(reader.u16("id length"), "id");
    const topic = reader.text(reader.u16("topic length"), "topic");
    const contentType = reader.text(reader.u8("content type length"), "content type");
    // The same bound as a /batch item's JSON header, so that a frame's size limit bounds its messages.
    if (reader.at - headerStart > MAX_ITEM_HEADER_BYTES) throw new WireError("BAD_REQUEST", `item ${items.length + 1} has a header of ${reader.at - headerStart} bytes`);
    if (id.length === 0 || id.length > MAX_MESSAGE_ID_CHARS) throw new WireError("BAD_REQUEST", `item ${items.length + 1} lacks an id, topic or content type`);
    const body = reader.bytes(reader.u32("body length"), "body");
    items.push({ id, topic, contentType, body });
  }
  return items;
}

export function encodeOutcomes(outcomes: BatchOutcome[]): Buffer {
  let total = 0;
  const reasons = outcomes.map((outcome) => {
    if ("ack" in outcome) {
      total += 6;
      return "";
    }
    const reason = outcome.reason.slice(0, MAX_REASON_CHARS);
    total += 6 + Buffer.byteLength(outcome.error) + Buffer.byteLength(reason);
    return reason;
  });
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  outcomes.forEach((outcome, i) => {
    if ("ack" in outcome) {
      at = out.writeUInt8(ACK, at);
      at = out.writeUInt32BE(outcome.ack.receivers, at);
      at = out.writeUInt8(outcome.ack.duplicate ? 1 : 0, at);
      return;
    }
    at = out.writeUInt8(FAILURE, at);
    at = out.writeUInt16BE(outcome.status, at);
    at = out.writeUInt8(Buffer.byteLength(outcome.error), at);
    at += out.write(outcome.error, at, "utf8");
    at = out.writeUInt16BE(Buffer.byteLength(reasons[i]), at);
    at += out.write(reasons[i], at, "utf8");
  });
  return out;
}

/**
 * The outcomes of the batch `sent`, in its order; an ack gets its id, topic and size from what was sent.
 * A malformed answer is the peer's fault (REMOTE_ERROR); missing outcomes are left out for the caller.
 */
export function decodeOutcomes(buffer: Buffer, sent: BatchItem[]): BatchOutcome[] {
  const outcomes: BatchOutcome[] = [];
  const reader = new Reader(buffer, (what) => new WireError("REMOTE_ERROR", `the peer's answer on the message channel is cut short (${what})`));
  while (!reader.done) {
    const item = sent[outcomes.length];
    if (!item) throw new WireError("REMOTE_ERROR", "the peer's answer on the message channel has more outcomes than messages");
    const tag = reader.u8("outcome");
    if (tag === ACK) {
      const ack: Ack = { id: item.id, topic: item.topic, receivers: reader.u32("receivers"), bytes: item.body.length };
      if (reader.u8("duplicate") === 1) ack.duplicate = true;
      outcomes.push({ ack });
    } else if (tag === FAILURE) {
      const status = reader.u16("status");
      const error = reader.text(reader.u8("code length"), "code") as WireErrorCode;
      const reason = reader.text(reader.u16("reason length"), "reason");
      outcomes.push({ error, reason, status });
    } else {
      throw new WireError("REMOTE_ERROR", `the peer's answer on the message channel has an outcome of kind ${tag}`);
    }
  }
  return outcomes;
}

/** Reads lengths, strings and bytes in order, failing with `cutShort` when the buffer ends first. */
class Reader {
  at = 0;

  constructor(
    private readonly buffer: Buffer,
    private readonly cutShort: (what: string) => Error,
  ) {}

  get done(): boolean {
    return this.at >= this.buffer.length;
  }

  u8(what: string): number {
    this.need(1, what);
    return this.buffer[this.at++];
  }

  u16(what: string): number {
    this.need(2, what);
    const value = this.buffer.readUInt16BE(this.at);
    this.at += 2;
    return value;
  }

  u32(what: string): number {
    this.need(4, what);
    const value = this.buffer.readUInt32BE(this.at);
    this.at += 4;
    return value;
  }

  text(length: number, what: string): string {
    this.need(length, what);
    const value = this.buffer.toString("utf8", this.at, this.at + length);
    this.at += length;
    return value;
  }

  bytes(length: number, what: string): Buffer {
    this.need(length, what);
    const value = this.buffer.subarray(this.at, this.at + length);
    this.at += length;
    return value;
  }

  private need(length: number, what: string): void {
    if (this.at + length > this.buffer.length) throw this.cutShort(what);
  }
}
