import { topicMatches, validatePattern } from "../protocol/topic";

/** Topics whose matching handlers are remembered; a device sees few topics, and a flood of new ones only empties the cache. */
const MAX_CACHED_TOPICS = 1_000;

/** Handlers registered under MQTT-style topic patterns. */
export class TopicSubscriptions<H> {
  private readonly entries = new Set<{ pattern: string; handler: H }>();
  /**
   * Each topic's handlers, until the subscriptions change: matching splits the pattern and the topic of
   * every subscription, and a flow with many receive nodes would do so for each of them per message.
   */
  private readonly matched = new Map<string, readonly H[]>();

  subscribe(pattern: string, handler: H): () => void {
    const entry = { pattern: validatePattern(pattern), handler };
    this.entries.add(entry);
    this.matched.clear();
    return () => {
      if (this.entries.delete(entry)) this.matched.clear();
    };
  }

  /** The handlers whose pattern matches `topic`, in the order they subscribed. */
  match(topic: string): readonly H[] {
    const known = this.matched.get(topic);
    if (known) return known;
    const found: H[] = [];
    for (const entry of this.entries) if (topicMatches(entry.pattern, topic)) found.push(entry.handler);
    if (this.matched.size >= MAX_CACHED_TOPICS) this.matched.clear();
    this.matched.set(topic, found);
    return found;
  }

  get size(): number {
    return this.entries.size;
  }
}
