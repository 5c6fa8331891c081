import { GROUP_DOC_PREFIX } from "../protocol/doc-ids";
import { verify } from "node:crypto";
import { deviceIdOf, deviceKeyFromSpki, Identity, isDeviceId } from "../identity";

/** A group of public keys as it travels between devices: content plus its owner's signature. */
export interface GroupDoc {
  _id: string;
  _rev?: string;
  type: "group";
  name: string;
  /** Device id of the owner, the only key that may sign this group. */
  owner: string;
  /** The owner's public key (DER SPKI, base64), so a copy can be verified with nothing else. */
  ownerKey: string;
  /** Device ids, sorted. */
  members: string[];
  /** Raised by one with every change; a lower version never replaces a higher one. */
  version: number;
  /** ECDSA P-256 / SHA-256 over {@link signedBytes}, base64. */
  signature: string;
}

export class GroupError extends Error {
  readonly code = "BAD_GROUP";
}

const GROUP_FIELDS = new Set(["_id", "_rev", "_revisions", "_conflicts", "type", "name", "owner", "ownerKey", "members", "version", "signature"]);
const GROUP_NAME = /^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$/;

export function isGroupName(name: unknown): name is string {
  return typeof name === "string" && GROUP_NAME.test(name);
}

/**
 * The signed list of keys an owner revokes: travels, is versioned and is kept as its groups are, but no
 * rule or msg.to can name it (no group name starts with "~"). Where a rule names the owner's groups,
 * every key in it is refused everything, whatever else names it (see Acl.isRevoked).
 */
export const REVOKED_GROUP = "~revoked";

/** A name a group document may carry: a group's, or the owner's revocation list. */
function isSignedListName(name: unknown): name is string {
  return isGroupName(name) || name === REVOKED_GROUP;
}

/** How rules and msg.to name a group: "group:<name>" (one of this device's own) or "group:<owner id>/<name>". */
export const GROUP_PRINCIPAL_PREFIX = "group:";

/**
 * The group a reference names: "group:<owner id>/<name>", "group:<name>" (owner undefined: this
 * device's own), and with `bare` a name alone (msg.to); undefined when it names no well-formed group.
 */
export function parseGroupReference(reference: string, options: { bare?: boolean } = {}): { owner?: string; name: string } | undefined {
  const prefixed = reference.startsWith(GROUP_PRINCIPAL_PREFIX);
  if (!prefixed && !options.bare) return undefined;
  const body = prefixed ? reference.slice(GROUP_PRINCIPAL_PREFIX.length) : reference;
  const slash = body.indexOf("/");
  if (slash === -1) return isGroupName(body) ? { name: body } : undefined;
  const [owner, name] = [body.slice(0, slash), body.slice(slash + 1)];
  return isDeviceId(owner) && isGroupName(name) ? { owner, name } : undefined;
}

/** The principal naming `owner`'s group `name` from anywhere: "group:<owner id>/<name>". */
export function groupPrincipal(owner: string, name: string): string {
  return `${GROUP_PRINCIPAL_PREFIX}${owner}/${name}`;
}

/** The document id of a group: owner and name together, so two owners' "family" groups never mix. */
export function groupDocId(owner: string, name: string): string {
  return `${GROUP_DOC_PREFIX}${owner}:${name}`;
}

/** The exact bytes that are signed: every field that carries meaning, in a fixed order. */
function signedBytes(doc: Omit<GroupDoc, "_id" | "_rev" | "signature">): Buffer {
  return Buffer.from(JSON.stringify(["peer-mesh-group/1", doc.type, doc.name, doc.owner, doc.ownerKey, doc.members, doc.version]));
}

/** Builds and signs a group owned by `owner`. */
export function signGroup(owner: Identity, name: string, members: Iterable<string>, version: number): GroupDoc {
  if (!isSignedListName(name)) throw new GroupError(`"${name}" is not a group name (letters, digits, space, _ . -; up to 64)`);
  const sorted = [...new Set(members)].sort();
  for (const member of sorted) if (!isDeviceId(member)) throw new GroupError(`group ${name}: "${member}" is not a device id`);
  if (!Number.isSafeInteger(version) || version < 1) throw new GroupError(`group ${name}: version must be a positive integer`);
  const body = { type: "group" as const, name, owner: owner.deviceId, ownerKey: owner.publicKeySpki.toString("base64"), members: sorted, version };
  return { _id: groupDocId(owner.deviceId, name), ...body, signature: owner.sign(signedBytes(body)).toString("base64") };
}

/**
 * Checks a group document that may have come through any relay: well formed, its key is the owner's
 * (the id is the key's hash), and the signature covers exactly this content. Throws GroupError saying
 * what is wrong; returns the document otherwise.
 */
export function verifyGroup(input: unknown): GroupDoc {
  const doc = (input ?? {}) as Partial<GroupDoc>;
  const label = typeof doc._id === "string" ? doc._id : "a group document";
  if (doc.type !== "group") throw new GroupError(`${label} is not a group`);
  if (!isSignedListName(doc.name) || !isDeviceId(doc.owner) || typeof doc.ownerKey !== "string" || !Array.isArray(doc.members) || !Number.isSafeInteger(doc.version)) {
    throw new GroupError(`${label} is malformed`);
  }
  if (doc._id !== groupDocId(doc.owner, doc.name)) throw new GroupError(`${label} does not match its owner and name`);
  const extra = Object.keys(doc).filter((key) => !GROUP_FIELDS.has(key));
  if (extra.length > 0) throw new GroupError(`${label} carries fields that are not signed: ${extra.slice(0, 5).join(", ")}`);
  if (typeof doc.signature !== "string" || doc.signature === "") throw new GroupError(`${label} is not signed`);
  if (!doc.members.every(isDeviceId) || doc.members.some((member, i) => i > 0 && doc.members![i - 1] >= member)) {
    throw new GroupError(`${label} has members that are not sorted, distinct device ids`);
  }
  let key;
  try {
    key = deviceKeyFromSpki(Buffer.from(doc.ownerKey, "base64"));
  } catch (err) {
    throw new GroupError(`${label} carries an owner key that is unreadable or not a device key (${(err as Error).message})`);
  }
  if (deviceIdOf(key) !== doc.owner) throw new GroupError(`${label} carries a key that is not its owner's`);
  const body = { type: "group" as const, name: doc.name, owner: doc.owner, ownerKey: doc.ownerKey, members: doc.members, version: doc.version as number };
  if (!verify("sha256", signedBytes(body), key, Buffer.from(doc.signature, "base64"))) {
    throw new GroupError(`${label} has a signature that does not match its content (altered on the way?)`);
  }
  return doc as GroupDoc;
}
