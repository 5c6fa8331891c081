import { WireError } from "../protocol/errors";
import { MAX_REPLY_BYTES } from "../protocol/wire";
import { encodePayload } from "./payload";

export interface Reply {
  body: Buffer;
  contentType: string;
}

/** The receiving side of one request: the flow answers through it once, within the sender's wait. */
export interface ReplySlot {
  /** Settles with the first answer, or with TIMEOUT when the sender's wait is over. */
  readonly reply: Promise<Reply>;
  /** Throws when the request was answered already or its wait is over, or the answer is too large. */
  answer(payload: unknown): void;
}

interface Held {
  slot: ReplySlot;
  keptUntil: number;
}

/** How long an answered request's reply is kept for a sender that asks again with the same id. */
const KEEP_MS = 60_000;
const MAX_HELD = 1_000;

/**
 * Requests waiting for their flow's answer, by sender and message id. A sender that asks again with the
 * same id (Catch → retry after a timeout or a dropped connection) gets the same answer, or waits for the
 * one still to come, instead of having the request handled twice.
 */
export class ReplySlots {
  private readonly held = new Map<string, Held>();

  /** The slot for this request; `fresh` is false for a repeat of a request seen within the last minute. */
  open(key: string, withinMs: number, now = Date.now()): { slot: ReplySlot; fresh: boolean } {
    this.prune(now);
    const known = this.held.get(key);
    if (known) return { slot: known.slot, fresh: false };
    const slot = makeSlot(withinMs);
    this.held.set(key, { slot, keptUntil: now + withinMs + KEEP_MS });
    return { slot, fresh: true };
  }

  /** The request failed before its flow saw it (no receiver, refused): a retry starts afresh. */
  forget(key: string): void {
    this.held.delete(key);
  }

  get size(): number {
    return this.held.size;
  }

  private prune(now: number): void {
    // Insertion order is expiry order, all but for different waits; the cap bounds memory either way.
    for (const [key, held] of this.held) {
      if (held.keptUntil > now && this.held.size < MAX_HELD) break;
      this.held.delete(key);
    }
  }
}

function makeSlot(withinMs: number): ReplySlot {
  let settle!: (reply: Reply) => void;
  let fail!: (err: Error) => void;
  let open = true;
  const reply = new Promise<Reply>((resolve, reject) => {
    settle = resolve;
    fail = reject;
  });
  reply.catch(() => undefined); // a request whose sender is gone still settles; nobody need wait on it
  const timer = setTimeout(() => {
    open = false;
    fail(new WireError("TIMEOUT", `the receiving flow did not reply within ${withinMs} ms`));
  }, withinMs);
  timer.unref();
  return {
    reply,
    answer(payload: unknown): void {
      if (!open) throw new WireError("TIMEOUT", "the request was answered already, or its sender stopped waiting");
      const encoded = encodePayload(payload);
      if (encoded.body.length > MAX_REPLY_BYTES) {
        throw new WireError("TOO_LARGE", `a reply is at most ${MAX_REPLY_BYTES} bytes (this one is ${encoded.body.length}); send larger data as a stream`);
      }
      open = false;
      clearTimeout(timer);
      settle(encoded);
    },
  };
}
