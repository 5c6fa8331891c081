import should from "should";
import { TopicSubscriptions, topicMatches, validatePattern, validateTopic, WireError } from "../../lib";

describe("topics", () => {
  it("matches MQTT-style wildcards", () => {
    const cases: Array<[string, string, boolean]> = [
      ["a/b", "a/b", true],
      ["a/b", "a/c", false],
      ["a/+", "a/b", true],
      ["a/+", "a/b/c", false],
      ["a/+/c", "a/x/c", true],
      ["a/#", "a", true],
      ["a/#", "a/b/c", true],
      ["#", "anything/at/all", true],
      ["+", "a", true],
      ["+", "a/b", false],
      ["a/b", "a/b/c", false],
      ["a/b/c", "a/b", false],
    ];
    for (const [pattern, topic, expected] of cases) should(topicMatches(pattern, topic)).equal(expected, `${pattern} vs ${topic}`);
  });

  it("matches as splitting both into levels would, on 100,000 random patterns and topics (empty levels too)", () => {
    // The specification: the plain split-and-compare that topicMatches replaced (in place, for speed).
    const bySplitting = (pattern: string, topic: string): boolean => {
      const want = pattern.split("/");
      const have = topic.split("/");
      for (let i = 0; i < want.length; i++) {
        if (want[i] === "#") return true;
        if (i >= have.length) return false;
        if (want[i] !== "+" && want[i] !== have[i]) return false;
      }
      return want.length === have.length;
    };
    let seed = 7;
    const random = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed % n);
    const levels = (pick: string[]): string => Array.from({ length: 1 + random(5) }, () => pick[random(pick.length)]).join("/");
    let matched = 0;
    for (let i = 0; i < 100_000; i++) {
      const pattern = levels(["a", "b", "ab", "", "+", "#"]);
      const topic = levels(["a", "b", "ab", "ba", ""]);
      const expected = bySplitting(pattern, topic);
      if (topicMatches(pattern, topic) !== expected) should.fail(topicMatches(pattern, topic), expected, `${JSON.stringify(pattern)} vs ${JSON.stringify(topic)}`);
      if (expected) matched += 1;
    }
    // Both outcomes were exercised plenty.
    should(matched).be.within(1_000, 99_000);
  });

  it("refuses wildcards, control characters and empty or huge topics for sending", () => {
    should(validateTopic("factory/line-3/alarm")).equal("factory/line-3/alarm");
    for (const bad of ["", "a/+", "a/#", "a\nb", "x".repeat(513), undefined, 5]) should(() => validateTopic(bad)).throw(WireError);
  });

  it("refuses malformed patterns", () => {
    for (const good of ["#", "a/+/c", "a/#", "+/+"]) should(validatePattern(good)).equal(good);
    for (const bad of ["", "a/#/b", "a#", "a/b+", undefined]) should(() => validatePattern(bad)).throw(WireError);
  });

  it("finds every subscription that matches and forgets unsubscribed ones", () => {
    const subscriptions = new TopicSubscriptions<string>();
    subscriptions.subscribe("a/#", "all of a");
    const off = subscriptions.subscribe("a/+", "one level");
    subscriptions.subscribe("b", "b only");
    should([...subscriptions.match("a/x")].sort()).eql(["all of a", "one level"]);
    off();
    should(subscriptions.match("a/x")).eql(["all of a"]);
    should(subscriptions.match("c")).eql([]);
    off(); // a second unsubscribe changes nothing
    should(subscriptions.match("a/x")).eql(["all of a"]);
  });

  it("finds a subscription made after the topic was matched (matches are remembered per topic)", () => {
    const subscriptions = new TopicSubscriptions<string>();
    subscriptions.subscribe("a/+", "one level");
    should(subscriptions.match("a/x")).eql(["one level"]);
    subscriptions.subscribe("#", "everything");
    should(subscriptions.match("a/x")).eql(["one level", "everything"]);
    should(subscriptions.match("c")).eql(["everything"]);
  });
});
