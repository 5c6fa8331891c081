import { EventEmitter } from "node:events";
import type { Verb } from "../protocol/wire";
import { compileResource, type CompiledResource, groupOfPrincipal, Rule, validateRules, VERBS } from "./rules";
import { type Identity, type RotationStatement, RotationError, verifyRotation } from "../identity";
import { GROUP_PRINCIPAL_PREFIX, GroupDoc, groupDocId, GroupError, groupPrincipal, REVOKED_GROUP, signGroup, verifyGroup } from "./signed-group";

export interface AclOptions {
  /** This device's id: "group:<name>" means a group it owns. */
  selfId: string;
  rules?: Rule[];
  /** The configured known peers, for the principal "known". */
  isKnown?: (id: string) => boolean;
  /** Decisions remembered until the next change; bounded so varied topics cannot grow it. */
  decisionCacheSize?: number;
}

export interface AclEvents {
  /** Rules or a group changed: open streams must be checked again. */
  changed: [];
  /** A group document failed verification or was older than one already held. */
  rejected: [info: { id: string; reason: string }];
}

/** The rules that "known" peers had before there was an ACL: everything. */
export const DEFAULT_RULES: Rule[] = [{ effect: "allow", principal: "known", verb: "*", resource: "*" }];

const DEFAULT_DECISION_CACHE = 10_000;
/** Up to this many rules that can name a device, its requests are decided without the decision cache. */
const DIRECT_DECISION_RULES = 16;

/** A rule as a decision weighs it. */
interface WeighedRule extends CompiledResource {
  deny: boolean;
}

/**
 * What deciding for one device takes, gathered once until the next change: whether it is refused
 * outright (revoked or retired), and per verb the rules that can name it for that verb.
 */
interface DeviceRules {
  refused: boolean;
  /** How many rules can name it, any verb. */
  count: number;
  byVerb: Map<Verb, WeighedRule[]>;
}

/**
 * Decides who may do what: rules over principals (a device, a group of public keys, the known peers, any
 * authenticated device), verbs and resources. Deny beats allow; nothing matching means deny, so unknown
 * keys get nothing unless a rule names "any". Groups are signed documents verified on arrival; the
 * highest valid version of each is kept, so a replayed older copy cannot undo a revocation.
 */
export class Acl extends EventEmitter<AclEvents> {
  readonly selfId: string;
  private rules: Rule[] = [];
  /** Rules by principal: a decision looks only at the rules that can name the device. */
  private rulesByPrincipal = new Map<string, Rule[]>();
  /** Each rule's resource pattern, compiled with the rules. */
  private resources = new Map<Rule, CompiledResource>();
  /** Per device, the rules of its principals (emptied with the principals). */
  private readonly rulesCache = new Map<string, DeviceRules>();
  private readonly groups = new Map<string, GroupDoc>();
  private readonly memberships = new Map<string, Set<string>>();
  /** Revoked keys, each with the owners that revoked it (this device, or an owner whose groups a rule names). */
  private readonly revoked = new Map<string, string[]>();
  /** Key rotations, by the old key: the old key is retired, and the new one answers to what named it. */
  private readonly rotations = new Map<string, RotationStatement>();
  /** Per new key, the keys it rotated from (oldest last), rebuilt with the principals. */
  private readonly predecessors = new Map<string, string[]>();
  private readonly decisions = new Map<string, boolean>();
  private readonly principalCache = new Map<string, string[]>();
  private readonly isKnown: (id: string) => boolean;
  private readonly cacheSize: number;

  constructor(options: AclOptions) {
    super();
    this.selfId = options.selfId;
    this.isKnown = options.isKnown ?? (() => false);
    this.cacheSize = options.decisionCacheSize ?? DEFAULT_DECISION_CACHE;
    this.setRules(options.rules ?? DEFAULT_RULES);
  }

  setRules(rules: unknown): void {
    this.rules = validateRules(rules);
    this.rulesByPrincipal = new Map();
    this.resources = new Map(this.rules.map((rule) => [rule, compileResource(rule.resource)]));
    for (const rule of this.rules) {
      const list = this.rulesByPrincipal.get(rule.principal);
      if (list) list.push(rule);
      else this.rulesByPrincipal.set(rule.principal, [rule]);
    }
    this.invalidate();
  }

  /**
   * Takes a group document from anywhere (this device, a replica, a relay). Returns true when it is now
   * the copy in force; false, with a "rejected" event saying why, when it is invalid or outdated.
   */
  acceptGroup(input: unknown): boolean {
    let doc: GroupDoc;
    try {
      doc = verifyGroup(input);
    } catch (err) {
      const id = typeof (input as { _id?: unknown })?._id === "string" ? (input as { _id: string })._id : "?";
      this.emit("rejected", { id, reason: err instanceof GroupError ? err.message : String(err) });
      return false;
    }
    const held = this.groups.get(doc._id);
    if (held && held.version > doc.version) {
      this.emit("rejected", { id: doc._id, reason: `version ${doc.version} is older than the version ${held.version} in force` });
      return false;
    }
    if (held && held.version === doc.version) return held.signature === doc.signature;
    this.groups.set(doc._id, doc);
    this.invalidate();
    return true;
  }

  /**
   * Takes a key rotation statement (verified here). It counts only for keys this device has a reason to
   * follow: ones a rule, a group held here or the known peers name (anyone can sign rotations between
   * fresh keys). The first statement for a key stands; a second one naming another new key is refused
   * (whoever stole the old key could sign one: the owner revokes the key, and a revoked key's rotation
   * counts for nothing). Returns true when it is new here.
   */
  acceptRotation(input: unknown): boolean {
    let statement: RotationStatement;
    try {
      statement = verifyRotation(input);
    } catch (err) {
      this.emit("rejected", { id: "key rotation", reason: err instanceof RotationError ? err.message : String(err) });
      return false;
    }
    const held = this.rotations.get(statement.from);
    if (held) {
      if (held.to !== statement.to) this.emit("rejected", { id: `rotation of ${statement.from.slice(0, 8)}`, reason: `a rotation to ${held.to.slice(0, 8)} is already in force; this one names ${statement.to.slice(0, 8)}` });
      return false;
    }
    // The old key's or the new key's: a group owner's new version may already name the new key.
    if (!this.follows(statement.from) && !this.follows(statement.to)) return false;
    this.rotations.set(statement.from, statement);
    this.invalidate();
    return true;
  }

  /** The key `id` moved to, following each rotation held here (and not revoked); `id` itself when none. */
  successorOf(id: string): string {
    return this.successorsOf(id).at(-1) ?? id;
  }

  /** The key `id` rotated from most recently (a rotation that counts), if any. */
  predecessorOf(id: string): string | undefined {
    return this.predecessors.get(id)?.[0];
  }

  /** Whether `id` is an old key that moved on: it is refused everything, as a revoked one. */
  isRetired(id: string): boolean {
    return this.rotations.has(id);
  }

  /** Every rotation held here. */
  listRotations(): RotationStatement[] {
    return [...this.rotations.values()];
  }

  /** Whether a rule, a group held here, the known peers or an earlier rotation names `id`. */
  private follows(id: string): boolean {
    return this.isKnown(id) || this.memberships.has(id) || this.predecessors.has(id) || this.rulesByPrincipal.has(`device:${id}`);
  }

  /**
   * The next signed version of `owner`'s group `name` with exactly these members, or undefined when
   * the version in force already has them. Not yet in force: the caller stores it, then accepts it.
   */
  revise(owner: Identity, name: string, members: string[]): GroupDoc | undefined {
    const held = this.group(owner.deviceId, name);
    const wanted = [...new Set(members)].sort();
    if (held && held.members.join() === wanted.join()) return undefined;
    return signGroup(owner, name, wanted, (held?.version ?? 0) + 1);
  }

  group(owner: string, name: string): GroupDoc | undefined {
    return this.groups.get(groupDocId(owner, name));
  }

  listGroups(): GroupDoc[] {
    return [...this.groups.values()];
  }

  /**
   * The other owners that vouch for `peerId`: their signed groups that hold it and that a rule here names
   * (group:<owner>/<name>). Such an owner is an introducer: its group lets the peer in without pairing.
   */
  introducersOf(peerId: string): Array<{ owner: string; group: string }> {
    return this.introduced().filter((entry) => entry.member === peerId).map(({ owner, group }) => ({ owner, group }));
  }

  /** Every device let in by another owner's group that an allow rule here names: who introduced whom. */
  introduced(): Array<{ member: string; owner: string; group: string }> {
    const vouching = [...this.groups.values()].filter((group) => group.owner !== this.selfId && this.rules.some((rule) => {
      const named = rule.effect === "allow" ? groupOfPrincipal(rule.principal, this.selfId) : undefined;
      return named?.owner === group.owner && named.name === group.name;
    }));
    return vouching.flatMap((group) => group.members.filter((member) => member !== this.selfId && !this.revoked.has(member)).map((member) => ({ member, owner: group.owner, group: group.name })));
  }

  /**
   * Whether a key is revoked here: listed in this device's own revocation list, or in that of an owner
   * whose groups a rule names (the fleet's owner, who let it in). A revoked key is refused everything,
   * whatever rule, group or configured peer entry names it.
   */
  isRevoked(peerId: string): boolean {
    return this.revoked.has(peerId);
  }

  /** Every key revoked here, with who revoked it. */
  revocations(): Array<{ id: string; by: string[] }> {
    return [...this.revoked].map(([id, by]) => ({ id, by: [...by] }));
  }

  /** Whether a device is in the group a principal such as "group:family" names. */
  inGroup(principal: string, peerId: string): boolean {
    const ref = groupOfPrincipal(principal, this.selfId);
    return !!ref && !!this.groups.get(groupDocId(ref.owner, ref.name))?.members.includes(peerId);
  }

  authorize(peerId: string, verb: Verb, resource: string): boolean {
    // A device that few rules can name is decided on the spot: cheaper than building a cache key and
    // keeping it (each new topic would add one, and the cache is emptied when full).
    const rules = this.rulesFor(peerId);
    if (rules.count <= DIRECT_DECISION_RULES) return decide(rules, verb, resource);
    const key = `${peerId}\u0000${verb}\u0000${resource}`;
    const cached = this.decisions.get(key);
    if (cached !== undefined) return cached;
    const decision = decide(rules, verb, resource);
    if (this.decisions.size >= this.cacheSize) this.decisions.clear();
    this.decisions.set(key, decision);
    return decision;
  }

  /**
   * authorize(peerId, verb, `${kind}/${topic}`), without joining the two: the wire asks this at both ends
   * of every message, and the joined string would be built and copied only for the ACL to read.
   */
  authorizeTopic(peerId: string, verb: Verb, kind: "msg" | "stream", topic: string): boolean {
    const rules = this.rulesFor(peerId);
    if (rules.count <= DIRECT_DECISION_RULES) return decideTopic(rules, verb, kind, topic);
    return this.authorize(peerId, verb, `${kind}/${topic}`);
  }

  /**
   * Whether some allow rule names this device for `verb` (any, when left out) on a resource under
   * `prefix` ("msg/", "db/"; any, when left out). Deny rules are not weighed: this is the cheap question
   * asked before a body is read or a connection is given room; each request is still decided in full.
   */
  permitsSome(peerId: string, verb?: Verb, prefix?: string): boolean {
    if (this.revoked.has(peerId) || this.rotations.has(peerId)) return false;
    for (const principal of this.principalsOf(peerId)) {
      for (const rule of this.rulesByPrincipal.get(principal) ?? []) {
        if (rule.effect !== "allow") continue;
        if (verb && rule.verb !== "*" && rule.verb !== verb) continue;
        if (prefix && rule.resource !== "*" && !rule.resource.startsWith(prefix)) continue;
        return true;
      }
    }
    return false;
  }

  /** Whether a rule names a group of `owner`'s (group:<owner>/<name>): this device then keeps that owner's groups. */
  namesGroupOwner(owner: string): boolean {
    const owners = [owner, ...(this.predecessors.get(owner) ?? [])];
    return owner === this.selfId || this.rules.some((rule) => owners.includes(groupOfPrincipal(rule.principal, this.selfId)?.owner ?? ""));
  }

  /** The keys `id` moved to, oldest first (each rotation held here that counts). */
  successorsOf(id: string): string[] {
    const chain: string[] = [];
    for (let current = id; chain.length < 16; ) {
      const next = this.rotations.get(current);
      // A rotation from or to a revoked key counts for nothing: whoever stole a key can sign its rotation.
      if (!next || this.revoked.has(next.from) || this.revoked.has(next.to) || next.to === id || chain.includes(next.to)) break;
      chain.push(next.to);
      current = next.to;
    }
    return chain;
  }


  /** The rules that can name a device: those of each principal it answers to (remembered with them). */
  private rulesFor(peerId: string): DeviceRules {
    let rules = this.rulesCache.get(peerId);
    if (rules) return rules;
    const naming = this.principalsOf(peerId).flatMap((principal) => this.rulesByPrincipal.get(principal) ?? []);
    const byVerb = new Map<Verb, WeighedRule[]>();
    for (const verb of VERBS) {
      const weighed = naming.filter((rule) => rule.verb === "*" || rule.verb === verb).map((rule) => ({ ...this.resources.get(rule)!, deny: rule.effect === "deny" }));
      byVerb.set(verb, weighed);
    }
    rules = { refused: this.revoked.has(peerId) || this.rotations.has(peerId), count: naming.length, byVerb };
    if (this.rulesCache.size >= this.cacheSize) this.rulesCache.clear();
    this.rulesCache.set(peerId, rules);
    return rules;
  }

  /** Every principal string a device answers to (remembered until the next change). */
  private principalsOf(peerId: string): string[] {
    let principals = this.principalCache.get(peerId);
    if (principals) return principals;
    principals = ["any", `device:${peerId}`, ...(this.isKnown(peerId) ? ["known"] : []), ...(this.memberships.get(peerId) ?? [])];
    // A key that rotated here answers to whatever named the keys it rotated from.
    for (const old of this.predecessors.get(peerId) ?? []) {
      principals.push(`device:${old}`, ...(this.isKnown(old) ? ["known"] : []), ...(this.memberships.get(old) ?? []));
    }
    if (this.principalCache.size >= this.cacheSize) this.principalCache.clear();
    this.principalCache.set(peerId, principals);
    return principals;
  }

  /** The set of known peers changed (a peer added at run time): cached decisions about "known" are stale. */
  knownPeersChanged(): void {
    this.invalidate();
  }

  private invalidate(): void {
    this.decisions.clear();
    this.principalCache.clear();
    this.rulesCache.clear();
    this.memberships.clear();
    this.revoked.clear();
    // Which owners' revocation lists count may depend on a rotation (a rule names the owner's old key)…
    this.predecessors.clear();
    this.chainRotations();
    for (const group of this.groups.values()) {
      if (group.name !== REVOKED_GROUP || !this.namesGroupOwner(group.owner)) continue;
      for (const member of group.members) this.revoked.set(member, [...(this.revoked.get(member) ?? []), group.owner]);
    }
    // …and a rotation from or to a revoked key gives the new key nothing.
    this.predecessors.clear();
    this.chainRotations();
    for (const group of this.groups.values()) {
      if (group.name === REVOKED_GROUP) continue;
      // An owner that moved to a new key signs its groups with it: rules that named its old key's groups name these.
      const owners = [group.owner, ...(this.predecessors.get(group.owner) ?? [])];
      const principals = [...(group.owner === this.selfId ? [`${GROUP_PRINCIPAL_PREFIX}${group.name}`] : []), ...owners.map((owner) => groupPrincipal(owner, group.name))];
      for (const member of group.members) {
        let set = this.memberships.get(member);
        if (!set) this.memberships.set(member, (set = new Set()));
        for (const principal of principals) set.add(principal);
      }
    }
    this.emit("changed");
  }

  /** Per new key, the keys it rotated from (newest first), over the rotations that count now. */
  private chainRotations(): void {
    const movedFrom = new Map<string, string>();
    for (const { from, to } of this.rotations.values()) if (!this.revoked.has(from) && !this.revoked.has(to)) movedFrom.set(to, from);
    for (const to of movedFrom.keys()) {
      const chain: string[] = [];
      for (let old = movedFrom.get(to); old && chain.length < 16 && !chain.includes(old) && old !== to; old = movedFrom.get(old)) chain.push(old);
      this.predecessors.set(to, chain);
    }
  }
}

/** decide() for a message or stream topic. */
function decideTopic(rules: DeviceRules, verb: Verb, kind: "msg" | "stream", topic: string): boolean {
  if (rules.refused) return false;
  let allowed = false;
  for (const rule of rules.byVerb.get(verb) ?? []) {
    if ((rule.topicKind !== kind && rule.topicKind !== "*") || !rule.coversTopic(topic)) continue;
    if (rule.deny) return false;
    allowed = true;
  }
  return allowed;
}

/** Deny beats allow; nothing that covers the resource means deny. */
function decide(rules: DeviceRules, verb: Verb, resource: string): boolean {
  if (rules.refused) return false;
  let allowed = false;
  for (const rule of rules.byVerb.get(verb) ?? []) {
    if (!rule.covers(resource)) continue;
    if (rule.deny) return false;
    allowed = true;
  }
  return allowed;
}
