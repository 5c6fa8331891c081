import { isDeviceId } from "../identity";
import type { Verb } from "../protocol/wire";
import { topicMatches, topicMatchesAt, validatePattern } from "../protocol/topic";
import { parseGroupReference } from "./signed-group";

export const VERBS: readonly Verb[] = ["send", "receive", "read", "write", "relay"];

/**
 * One line of policy: who (a device, a group, the configured known peers, or any authenticated device)
 * may or may not do what (a verb) to what (a message or stream topic pattern, a database, the mesh).
 */
export interface Rule {
  effect: "allow" | "deny";
  /** "any" | "known" | "device:<id>" | "group:<name>" (owned by this device) | "group:<owner id>/<name>" */
  principal: string;
  verb: Verb | "*";
  /** "*" | "msg/<pattern>" | "stream/<pattern>" | "db/<name>" | "db/*" | "mesh" */
  resource: string;
}

export class AclError extends Error {
  readonly code = "BAD_RULE";
}

/** Every problem of a rule, as sentences; empty when it is valid. */
export function ruleProblems(rule: unknown, index: number): string[] {
  const r = (rule ?? {}) as Partial<Record<keyof Rule, unknown>>;
  const label = `rule ${index + 1}`;
  const problems: string[] = [];
  if (r.effect !== "allow" && r.effect !== "deny") problems.push(`${label}: effect must be allow or deny`);
  if (typeof r.principal !== "string" || !isPrincipal(r.principal)) problems.push(`${label}: "${String(r.principal)}" is not any, known, device:<id> or group:<name>`);
  if (r.verb !== "*" && !VERBS.includes(r.verb as Verb)) problems.push(`${label}: verb must be one of ${VERBS.join(", ")} or *`);
  if (typeof r.resource !== "string" || !resourceIsValid(r.resource)) problems.push(`${label}: "${String(r.resource)}" is not *, msg/<topic>, stream/<topic>, db/<name> or mesh`);
  return problems;
}

export function validateRules(rules: unknown): Rule[] {
  if (!Array.isArray(rules)) throw new AclError("the rules must be a list");
  const problems = rules.flatMap((rule, i) => ruleProblems(rule, i));
  if (problems.length > 0) throw new AclError(problems.join("; "));
  return rules.map((rule: Rule) => ({ effect: rule.effect, principal: rule.principal, verb: rule.verb, resource: rule.resource }));
}

function isPrincipal(principal: string): boolean {
  if (principal === "any" || principal === "known") return true;
  if (principal.startsWith("device:")) return isDeviceId(principal.slice(7));
  return parseGroupReference(principal) !== undefined;
}

function resourceIsValid(resource: string): boolean {
  if (resource === "*" || resource === "mesh" || resource === "db/*") return true;
  if (resource.startsWith("db/")) return /^db\/[a-z][a-z0-9_$()+/-]*$/.test(resource);
  for (const prefix of ["msg/", "stream/"]) {
    if (resource.startsWith(prefix)) {
      try {
        validatePattern(resource.slice(prefix.length));
        return true;
      } catch {
        return false;
      }
    }
  }
  return false;
}

/** Whether a rule's resource pattern covers a concrete resource ("msg/factory/line-3/temp", "db/readings"). */
export function resourceMatches(pattern: string, resource: string): boolean {
  if (pattern === "*") return true;
  if (pattern === "db/*") return resource.startsWith("db/");
  for (const prefix of ["msg/", "stream/"]) {
    if (pattern.startsWith(prefix)) return resource.startsWith(prefix) && topicMatchesAt(pattern, prefix.length, resource, prefix.length);
  }
  return pattern === resource;
}

/** A rule's resource pattern as a test of concrete resources ("msg/factory/line-3/temp", "db/readings"). */
export type ResourceTest = (resource: string) => boolean;
/** A message or stream topic pattern as a test of concrete topics. */
export type TopicTest = (topic: string) => boolean;

/**
 * A rule's resource pattern, compiled: the test of a whole resource, and for the resources a topic names
 * (messages and streams), which kind it covers ("*" both) and the test of the topic alone, so that the
 * wire need not join "msg/" to every topic it asks about. Means the same as resourceMatches.
 */
export interface CompiledResource {
  covers: ResourceTest;
  topicKind?: "msg" | "stream" | "*";
  coversTopic: TopicTest;
}

const never = (): boolean => false;
const always = (): boolean => true;

export function compileResource(pattern: string): CompiledResource {
  if (pattern === "*") return { covers: always, topicKind: "*", coversTopic: always };
  if (pattern === "db/*") return { covers: (resource) => resource.startsWith("db/"), coversTopic: never };
  const prefix = pattern.startsWith("msg/") ? "msg/" : pattern.startsWith("stream/") ? "stream/" : undefined;
  if (prefix === undefined) return { covers: (resource) => resource === pattern, coversTopic: never };
  const coversTopic = topicTest(pattern.slice(prefix.length));
  return {
    covers: (resource) => resource.startsWith(prefix) && coversTopic(resource.slice(prefix.length)),
    topicKind: prefix === "msg/" ? "msg" : "stream",
    coversTopic,
  };
}

/**
 * The cheapest test that means the same as topicMatches(pattern, ·): most patterns name one topic or
 * everything under a level ("factory/#"), which a string comparison decides.
 */
export function topicTest(pattern: string): TopicTest {
  if (!pattern.includes("+")) {
    if (pattern === "#") return always;
    // "a/#" covers "a" itself and every level under it.
    if (pattern.endsWith("/#")) {
      const level = pattern.slice(0, -2);
      const under = pattern.slice(0, -1);
      return (topic) => topic === level || topic.startsWith(under);
    }
    if (!pattern.includes("#")) return (topic) => topic === pattern;
  }
  return (topic) => topicMatches(pattern, topic);
}

/** The owner and name of the group a principal names ("group:<name>" is one of `selfId`'s own). */
export function groupOfPrincipal(principal: string, selfId: string): { owner: string; name: string } | undefined {
  const ref = parseGroupReference(principal);
  return ref && { owner: ref.owner ?? selfId, name: ref.name };
}
