import type { Acl } from "../acl/acl";
import { GROUP_PRINCIPAL_PREFIX, type GroupDoc, GroupError, groupPrincipal, parseGroupReference } from "../acl/signed-group";
import { type Identity, shortId } from "../identity";
import { WireError } from "../protocol/errors";

/** Members of one group from another owner kept at most. */
const MAX_FOREIGN_GROUP_MEMBERS = 1_000;

export interface DeviceGroupsOptions {
  identity: Identity;
  acl: Acl;
  /** A configured or paired peer: its groups are kept. */
  knows(owner: string): boolean;
  /** Keeps a group this device signed (with its storage, when it has one). */
  save(doc: GroupDoc): Promise<void>;
}

/** A device's groups: its own, signed as they change, and which others' it keeps. */
export class DeviceGroups {
  constructor(private readonly options: DeviceGroupsOptions) {}

  /** Gives this device's group `name` exactly these members, signed anew (and stored) if they changed. */
  async set(name: string, members: string[]): Promise<void> {
    const { acl, identity } = this.options;
    const revised = acl.revise(identity, name, members);
    if (!revised) return;
    await this.options.save(revised);
    acl.acceptGroup(revised);
  }

  /** Adds one member to this device's group `name` (a confirmed pairing). */
  add(name: string, member: string): Promise<void> {
    return this.set(name, [...(this.options.acl.group(this.options.identity.deviceId, name)?.members ?? []), member]);
  }

  /** msg.to as a group: group:<owner id>/<name>, group:<name> or a bare name of this device's own groups. */
  membersOf(to: string): { to: string; members: string[] } | undefined {
    const reference = parseGroupReference(to, { bare: true });
    const owner = reference?.owner ?? this.options.identity.deviceId;
    const group = reference && this.options.acl.group(owner, reference.name);
    if (!group) {
      if (to.startsWith(GROUP_PRINCIPAL_PREFIX)) throw new WireError("UNKNOWN_PEER", `no group ${to} is known to this device`);
      return undefined;
    }
    return { to: groupPrincipal(owner, group.name), members: group.members };
  }

  /**
   * A group document from a peer or a relay is kept only if its owner is this device, a known or paired
   * peer, or named in a rule (group:<owner>/<name>): anyone can sign groups with a fresh key, and each
   * would cost storage and an ACL rebuild. Members are capped (groups per owner: the mesh); an older
   * version than the one in force is a replay.
   */
  check(doc: GroupDoc): void {
    const { acl, identity } = this.options;
    const owner = doc.owner;
    if (!acl.namesGroupOwner(owner) && !this.options.knows(owner)) {
      throw new GroupError(`${doc._id}: its owner ${shortId(owner)} is neither a known peer nor named in this device's rules`);
    }
    if (owner !== identity.deviceId && doc.members.length > MAX_FOREIGN_GROUP_MEMBERS) throw new GroupError(`${doc._id} has ${doc.members.length} members; this device keeps ${MAX_FOREIGN_GROUP_MEMBERS} at most in another owner's group`);
    const held = acl.group(owner, doc.name);
    if (held && held.version > doc.version) throw new GroupError(`${doc._id} version ${doc.version} is older than the version ${held.version} in force`);
    if (held && held.version === doc.version && held.signature !== doc.signature) throw new GroupError(`${doc._id} version ${doc.version} differs from the copy in force with the same version`);
  }
}
