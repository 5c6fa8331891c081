import { topicMatches, validatePattern } from "../protocol/topic";

/** Handlers registered under MQTT-style topic patterns. */
export class TopicSubscriptions<H> {
  private readonly entries = new Set<{ pattern: string; handler: H }>();

  subscribe(pattern: string, handler: H): () => void {
    const entry = { pattern: validatePattern(pattern), handler };
    this.entries.add(entry);
    return () => {
      this.entries.delete(entry);
    };
  }

  match(topic: string): H[] {
    const found: H[] = [];
    for (const entry of this.entries) if (topicMatches(entry.pattern, topic)) found.push(entry.handler);
    return found;
  }

  get size(): number {
    return this.entries.size;
  }
}
