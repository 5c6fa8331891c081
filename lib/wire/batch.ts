import { WireError, type WireErrorCode } from "../protocol/errors";
import { type Ack, MAX_MESSAGE_ID_CHARS } from "../protocol/wire";

/** One message inside a batch request: what a single /msg request carries in its path and headers. */
export interface BatchItem {
  id: string;
  topic: string;
  contentType: string;
  body: Buffer;
}

export type BatchOutcome = { ack: Ack } | { error: WireErrorCode; reason: string; status: number };

export const MAX_ITEM_HEADER_BYTES = 2048;

/** Bodies the client puts in one batch at most (a larger message goes on its own). */
export const MAX_BATCH_BODY_BYTES = 256 * 1024;
/** Messages in one batch at most, as the client makes them. */
export const MAX_BATCH_ITEMS = 256;
/** The largest batch request the listener reads: the client's bodies plus every item's framing and header. */
export const MAX_BATCH_REQUEST_BYTES = MAX_BATCH_BODY_BYTES + MAX_BATCH_ITEMS * (8 + MAX_ITEM_HEADER_BYTES);

/**
 * Several messages in one request body, each as [u32 length][JSON {id, topic, contentType}][u32 length][body].
 * Used only when messages queue up behind requests already in flight to the same peer.
 */
export function encodeBatch(items: BatchItem[]): Buffer {
  // One buffer written in place: a header buffer, two length buffers and a concat per message cost more
  // than the message's own encoding.
  const headers = items.map((item) => JSON.stringify({ id: item.id, topic: item.topic, contentType: item.contentType }));
  const headerBytes = headers.map((header) => Buffer.byteLength(header));
  let total = 0;
  for (let i = 0; i < items.length; i++) total += 8 + headerBytes[i] + items[i].body.length;
  const batch = Buffer.allocUnsafe(total);
  let at = 0;
  for (let i = 0; i < items.length; i++) {
    at = batch.writeUInt32BE(headerBytes[i], at);
    at += batch.write(headers[i], at, "utf8");
    at = batch.writeUInt32BE(items[i].body.length, at);
    at += items[i].body.copy(batch, at);
  }
  return batch;
}

export function decodeBatch(buffer: Buffer, maxItems: number): BatchItem[] {
  const items: BatchItem[] = [];
  let offset = 0;
  const take = (length: number, what: string): Buffer => {
    if (offset + length > buffer.length) throw new WireError("BAD_REQUEST", `the batch is cut short in item ${items.length + 1} (${what})`);
    const slice = buffer.subarray(offset, offset + length);
    offset += length;
    return slice;
  };
  while (offset < buffer.length) {
    if (items.length >= maxItems) throw new WireError("BAD_REQUEST", `a batch holds at most ${maxItems} messages`);
    const headerLength = take(4, "header length").readUInt32BE();
    if (headerLength > MAX_ITEM_HEADER_BYTES) throw new WireError("BAD_REQUEST", `item ${items.length + 1} has a header of ${headerLength} bytes`);
    let header: { id?: unknown; topic?: unknown; contentType?: unknown };
    try {
      header = JSON.parse(take(headerLength, "header").toString("utf8")) as typeof header;
    } catch (err) {
      if (err instanceof WireError) throw err;
      throw new WireError("BAD_REQUEST", `item ${items.length + 1} has an unreadable header`);
    }
    const { id, topic, contentType } = header ?? {};
    if (typeof id !== "string" || !id || id.length > MAX_MESSAGE_ID_CHARS || typeof topic !== "string" || typeof contentType !== "string") {
      throw new WireError("BAD_REQUEST", `item ${items.length + 1} lacks an id, topic or content type`);
    }
    const body = take(take(4, "body length").readUInt32BE(), "body");
    items.push({ id, topic, contentType, body });
  }
  return items;
}
