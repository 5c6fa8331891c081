import type { Readable } from "node:stream";
import { WireError } from "../protocol/errors";
import { onDecision, type Ack, type Authorizer, type TopicAuthorizer } from "../protocol/wire";
import type { Traffic } from "./traffic";
import type { Answer, ClientPool, PeerEndpoint, RequestOptions, SendOptions, StreamOptions } from "../wire/client-pool";

/**
 * What a device sends: only to peers its ACL lets receive it (whatever the peer would accept), and a
 * stream under way ends as soon as a rule change no longer lets its peer receive it.
 */
export class Outbox {
  private readonly streams = new Set<{ peerId: string; resource: string; body: Readable }>();

  constructor(
    private readonly pool: ClientPool,
    private readonly authorize: Authorizer,
    /** The same decisions, for a topic with its kind apart. */
    private readonly authorizeTopic: TopicAuthorizer,
    private readonly label: (id: string) => string,
    private readonly traffic?: Traffic,
  ) {}

  async send(endpoint: () => PeerEndpoint, topic: string, payload: unknown, options?: SendOptions): Promise<Ack> {
    const target = endpoint();
    const decided = this.ensureMayReceive(target.id, "msg", topic);
    if (decided) await decided;
    const ack = await this.pool.message(target, topic, payload, options);
    if (!ack.duplicate) this.traffic?.sent(target.id, "msg", ack.bytes);
    return ack;
  }

  async request(endpoint: () => PeerEndpoint, topic: string, payload: unknown, options?: RequestOptions): Promise<Answer> {
    const target = endpoint();
    await this.ensureMayReceive(target.id, "msg", topic);
    const answer = await this.pool.ask(target, topic, payload, options);
    if (!answer.ack.duplicate) this.traffic?.sent(target.id, "msg", answer.ack.bytes);
    return answer;
  }

  async sendStream(endpoint: () => PeerEndpoint, topic: string, body: Readable, options?: StreamOptions): Promise<Ack> {
    let target: PeerEndpoint;
    try {
      target = endpoint();
      await this.ensureMayReceive(target.id, "stream", topic);
    } catch (err) {
      body.destroy();
      throw err;
    }
    const outgoing = { peerId: target.id, resource: `stream/${topic}`, body };
    this.streams.add(outgoing);
    try {
      const ack = await this.pool.stream(target, topic, body, options);
      this.traffic?.sent(target.id, "stream", ack.bytes);
      return ack;
    } finally {
      this.streams.delete(outgoing);
    }
  }

  /** After an ACL change: outgoing streams to peers no longer allowed to receive them end now. */
  async recheck(): Promise<void> {
    for (const outgoing of [...this.streams]) {
      if (await this.authorize(outgoing.peerId, "receive", outgoing.resource)) continue;
      if (!this.streams.delete(outgoing)) continue;
      // A turn later: the pipeline then resets the HTTP/2 request, which must not happen inside nghttp2's read (see resetStream).
      const refused = new WireError("REFUSED", `${this.label(outgoing.peerId)} is no longer allowed to receive ${outgoing.resource}`);
      setImmediate(() => outgoing.body.destroy(refused));
    }
  }

  /** Throws when the ACL refuses; synchronously when it decides synchronously (onDecision). */
  private ensureMayReceive(peerId: string, kind: "msg" | "stream", topic: string): void | Promise<void> {
    return onDecision(this.authorizeTopic(peerId, "receive", kind, topic), (allowed) => {
      if (!allowed) throw new WireError("REFUSED", `this device's ACL does not let ${this.label(peerId)} receive ${kind}/${topic}`);
    });
  }
}
