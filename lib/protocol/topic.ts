import { WireError } from "./errors";

export const MAX_TOPIC_BYTES = 512;

/** A topic a message is sent to: MQTT-style levels, no wildcards, no control characters. */
export function validateTopic(topic: unknown): string {
  if (typeof topic !== "string" || topic.length === 0) throw new WireError("BAD_REQUEST", "a topic is required (msg.topic or the node's topic)");
  if (Buffer.byteLength(topic) > MAX_TOPIC_BYTES) throw new WireError("BAD_REQUEST", `the topic is longer than ${MAX_TOPIC_BYTES} bytes`);
  if (/[+#]/.test(topic)) throw new WireError("BAD_REQUEST", `the topic "${topic}" contains a wildcard (+ or #); wildcards are for receivers`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(topic)) throw new WireError("BAD_REQUEST", "the topic contains control characters");
  return topic;
}

/** A topic pattern a receiver listens on: `+` matches one level, `#` (last) matches the rest. */
export function validatePattern(pattern: unknown): string {
  if (typeof pattern !== "string" || pattern.length === 0) throw new WireError("BAD_REQUEST", "a topic pattern is required");
  const levels = pattern.split("/");
  levels.forEach((level, i) => {
    if (level.includes("#") && (level !== "#" || i !== levels.length - 1)) {
      throw new WireError("BAD_REQUEST", `"#" must be a whole level at the end of the pattern "${pattern}"`);
    }
    if (level.includes("+") && level !== "+") throw new WireError("BAD_REQUEST", `"+" must be a whole level in the pattern "${pattern}"`);
  });
  return pattern;
}

export function topicMatches(pattern: string, topic: string): boolean {
  const want = pattern.split("/");
  const have = topic.split("/");
  for (let i = 0; i < want.length; i++) {
    if (want[i] === "#") return true;
    if (i >= have.length) return false;
    if (want[i] !== "+" && want[i] !== have[i]) return false;
  }
  return want.length === have.length;
}
