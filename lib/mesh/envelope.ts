import { createCipheriv, createDecipheriv, createHash, diffieHellman, generateKeyPairSync, hkdfSync, KeyObject, randomBytes, randomUUID, verify } from "node:crypto";
import { deviceIdOf, deviceKeyFromSpki, Identity, isDeviceId, type RotationStatement, verifyRotation } from "../identity";
import { isOnionHostPort } from "../protocol/address";
import { ACK_DOC_PREFIX, DEVICE_DOC_PREFIX, MESSAGE_DOC_PREFIX } from "../protocol/doc-ids";

/**
 * Mesh documents: what travels through relays. Messages are encrypted to their recipients and signed by
 * their sender; acks and device documents are signed. Anyone holding a copy can verify it offline, since
 * each carries the signer's public key and a device id is the hash of that key.
 */

export type MeshMode = "flood" | "directed";

export interface WrappedKey {
  id: string;
  /** The message key, AES-256-GCM-wrapped under a key agreed with this recipient: iv | tag | ciphertext, base64. */
  key: string;
}

export interface MessageDoc {
  _id: string;
  _rev?: string;
  type: "mesh-msg";
  from: string;
  /** The sender's public key (SPKI DER, base64): verifies `sig`, and hashes to `from`. */
  fromKey: string;
  /** A device id, or group:<owner>/<name>. */
  to: string;
  recipients: WrappedKey[];
  /** The ephemeral public key the recipients' keys were agreed with. */
  epk: string;
  mode: MeshMode;
  priority: number;
  created: number;
  expires: number;
  /** SHA-256 of the encrypted body attachment, base64. */
  bodyHash: string;
  size: number;
  sig: string;
  _attachments?: Record<string, { content_type: string; data?: string | Buffer; stub?: boolean; length?: number; digest?: string }>;
}

export interface AckDoc {
  _id: string;
  _rev?: string;
  type: "mesh-ack";
  /** The message acknowledged. */
  msg: string;
  from: string;
  fromKey: string;
  /** The message's sender, toward whom directed acks travel. */
  to: string;
  mode: MeshMode;
  created: number;
  expires: number;
  sig: string;
}

export interface DeviceDoc {
  _id: string;
  _rev?: string;
  type: "mesh-device";
  id: string;
  key: string;
  name?: string;
  /** Devices this one exchanged mesh documents with, and when (ms since the epoch). */
  neighbours: Record<string, number>;
  /** Where Tor reaches the device ("<service id>.onion:443"), when it runs an onion service. */
  onion?: string;
  /**
   * Private identities: the neighbours, encrypted to the devices allowed to relay for this one (and to
   * itself); `neighbours` is then empty, and any other relay cannot tell who this device talks to.
   */
  sealed?: SealedNeighbours;
  /** The statement that moved this device here from its old key (signed by both keys), carried to every device. */
  rotatedFrom?: RotationStatement;
  updated: number;
  sig: string;
}

export interface SealedNeighbours {
  /** An ephemeral P-256 public key (SPKI DER, base64). */
  epk: string;
  /**
   * The content key, wrapped for each reader (base64), in random order and without the readers' ids:
   * those would tell every relay who this device trusts. A reader tries each (one GCM check apiece).
   */
  readers: string[];
  /** The neighbours as JSON, AES-256-GCM (base64). */
  data: string;
}

/** Readers of one device document's neighbours at most (each wrap is ~80 bytes of every copy). */
export const MAX_NEIGHBOUR_READERS = 200;

export type MeshDoc = MessageDoc | AckDoc | DeviceDoc;

/** A document that is not what it claims (signature, fields, dates) or replays an older copy. */
export class EnvelopeError extends Error {
  constructor(message: string, readonly code: "invalid" | "replayed" | "conflict" = "invalid") {
    super(message);
    this.name = "EnvelopeError";
  }
}

export const BODY_ATTACHMENT = "body";

/** PouchDB's bookkeeping, which replication carries beside the signed fields. */
const BOOKKEEPING = ["_id", "_rev", "_revisions", "_conflicts"];
const MESSAGE_FIELDS = new Set([...BOOKKEEPING, "_attachments", "type", "from", "fromKey", "to", "recipients", "epk", "mode", "priority", "created", "expires", "bodyHash", "size", "sig"]);
const ACK_FIELDS = new Set([...BOOKKEEPING, "type", "msg", "from", "fromKey", "to", "mode", "created", "expires", "sig"]);
const DEVICE_FIELDS = new Set([...BOOKKEEPING, "type", "id", "key", "name", "neighbours", "onion", "sealed", "rotatedFrom", "updated", "sig"]);
const MESSAGE_ID = /^msg:[0-9a-f-]{36}$/;

/** Nothing unsigned rides along: a relay could otherwise pad a document (quota) or smuggle data through it. */
function assertOnlyFields(doc: object, allowed: ReadonlySet<string>, label: string): void {
  const extra = Object.keys(doc).filter((key) => !allowed.has(key));
  if (extra.length > 0) throw new EnvelopeError(`${label} carries fields that are not signed: ${extra.slice(0, 5).join(", ")}`);
}
const WRAP_INFO = Buffer.from("peer-mesh key wrap v2");

export function messageDocId(uuid: string = randomUUID()): string {
  return `${MESSAGE_DOC_PREFIX}${uuid}`;
}

export function ackDocId(messageId: string, recipient: string): string {
  return `${ACK_DOC_PREFIX}${messageId.slice(MESSAGE_DOC_PREFIX.length)}:${recipient}`;
}

export function deviceDocId(id: string): string {
  return `${DEVICE_DOC_PREFIX}${id}`;
}

export interface SealInput {
  to: string;
  /** Every recipient with its public key (SPKI DER). */
  recipients: Array<{ id: string; key: Buffer }>;
  plaintext: Buffer;
  mode: MeshMode;
  priority: number;
  ttlMs: number;
  now?: number;
}

/**
 * Encrypts `plaintext` once under a fresh key, wraps that key for each recipient (ECDH with an ephemeral
 * key, HKDF, AES-256-GCM), and signs everything a relay can see. The body becomes the `body` attachment.
 */
export function sealMessage(sender: Identity, input: SealInput): MessageDoc {
  const now = input.now ?? Date.now();
  const _id = messageDocId();
  const contentKey = randomBytes(32);
  const ephemeral = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const from = sender.deviceId;
  const recipients = input.recipients.map(({ id, key }) => {
    const shared = diffieHellman({ privateKey: ephemeral.privateKey, publicKey: publicKeyOf(key) });
    return { id, key: aesSeal(wrappingKey(shared, _id, id, from), contentKey, wrapAad(id, from)).toString("base64") };
  });
  const body = aesSeal(contentKey, input.plaintext, bodyAad(_id, from));
  const unsigned: Omit<MessageDoc, "sig" | "_attachments"> = {
    _id,
    type: "mesh-msg",
    from,
    fromKey: sender.publicKeySpki.toString("base64"),
    to: input.to,
    recipients,
    epk: ephemeral.publicKey.export({ type: "spki", format: "der" }).toString("base64"),
    mode: input.mode,
    priority: input.priority,
    created: now,
    expires: now + input.ttlMs,
    bodyHash: createHash("sha256").update(body).digest("base64"),
    size: body.length,
  };
  return {
    ...unsigned,
    sig: sender.sign(messageSignedBytes(unsigned)).toString("base64"),
    _attachments: { [BODY_ATTACHMENT]: { content_type: "application/octet-stream", data: body.toString("base64") } },
  };
}

/** Checks what a relay can check: shape, sender key, signature, and the body's hash when the body is here. */
export function verifyMessage(input: unknown, body?: Buffer): MessageDoc {
  const doc = (input ?? {}) as Partial<MessageDoc>;
  const label = typeof doc._id === "string" ? doc._id : "a mesh message";
  if (doc.type !== "mesh-msg" || typeof doc._id !== "string" || !MESSAGE_ID.test(doc._id)) throw new EnvelopeError(`${label} is not a mesh message`);
  assertOnlyFields(doc, MESSAGE_FIELDS, label);
  if (!isDeviceId(doc.from) || typeof doc.to !== "string" || doc.to.length > 200 || (doc.mode !== "flood" && doc.mode !== "directed")) throw new EnvelopeError(`${label} is malformed`);
  if (!Array.isArray(doc.recipients) || doc.recipients.length === 0 || doc.recipients.length > 1000 || !doc.recipients.every((r) => isDeviceId(r?.id) && typeof r.key === "string" && r.key.length < 200)) {
    throw new EnvelopeError(`${label} has malformed recipients`);
  }
  for (const field of ["priority", "created", "expires", "size"] as const) if (!Number.isSafeInteger(doc[field])) throw new EnvelopeError(`${label} has no valid ${field}`);
  if (typeof doc.epk !== "string" || typeof doc.bodyHash !== "string" || typeof doc.sig !== "string") throw new EnvelopeError(`${label} is malformed`);
  if (doc.priority! < 0 || doc.priority! > 9 || doc.size! < 0 || doc.expires! <= doc.created!) throw new EnvelopeError(`${label} has a priority, size or expiry out of range`);
  checkSigner(label, doc.from, doc.fromKey, messageSignedBytes(doc as MessageDoc), doc.sig);
  if (body && body.length !== doc.size) throw new EnvelopeError(`${label} says its body is ${doc.size} bytes, but it is ${body.length}`);
  if (body && createHash("sha256").update(body).digest("base64") !== doc.bodyHash) throw new EnvelopeError(`${label} has a body that is not the one its sender signed (altered on the way?)`);
  return doc as MessageDoc;
}

/** Verifies and decrypts a message addressed to `recipient`. */
export function openMessage(recipient: Identity, doc: MessageDoc, body: Buffer): Buffer {
  verifyMessage(doc, body);
  const wrapped = doc.recipients.find((entry) => entry.id === recipient.deviceId);
  if (!wrapped) throw new EnvelopeError(`${doc._id} is not addressed to ${recipient.shortId}`);
  try {
    const shared = diffieHellman({ privateKey: recipient.privateKeyObject, publicKey: publicKeyOf(Buffer.from(doc.epk, "base64")) });
    const contentKey = aesOpen(wrappingKey(shared, doc._id, recipient.deviceId, doc.from), Buffer.from(wrapped.key, "base64"), wrapAad(recipient.deviceId, doc.from));
    return aesOpen(contentKey, body, bodyAad(doc._id, doc.from));
  } catch {
    throw new EnvelopeError(`${doc._id} cannot be decrypted with this device's key`);
  }
}

export function makeAck(recipient: Identity, message: MessageDoc, now = Date.now()): AckDoc {
  const unsigned: Omit<AckDoc, "sig"> = {
    _id: ackDocId(message._id, recipient.deviceId),
    type: "mesh-ack",
    msg: message._id,
    from: recipient.deviceId,
    fromKey: recipient.publicKeySpki.toString("base64"),
    to: message.from,
    mode: message.mode,
    created: now,
    expires: message.expires,
  };
  return { ...unsigned, sig: recipient.sign(ackSignedBytes(unsigned)).toString("base64") };
}

export function verifyAck(input: unknown): AckDoc {
  const doc = (input ?? {}) as Partial<AckDoc>;
  const label = typeof doc._id === "string" ? doc._id : "a mesh ack";
  if (doc.type !== "mesh-ack" || typeof doc.msg !== "string" || !MESSAGE_ID.test(doc.msg) || !isDeviceId(doc.from) || !isDeviceId(doc.to) || (doc.mode !== "flood" && doc.mode !== "directed")) throw new EnvelopeError(`${label} is malformed`);
  assertOnlyFields(doc, ACK_FIELDS, label);
  if (doc._id !== ackDocId(doc.msg, doc.from)) throw new EnvelopeError(`${label} does not match its message and signer`);
  if (!Number.isSafeInteger(doc.created) || !Number.isSafeInteger(doc.expires) || typeof doc.sig !== "string") throw new EnvelopeError(`${label} is malformed`);
  checkSigner(label, doc.from, doc.fromKey, ackSignedBytes(doc as AckDoc), doc.sig);
  return doc as AckDoc;
}

/** What signs a device document: an identity, or anything with a device id, its public key and a signature. */
export type DeviceSigner = Pick<Identity, "deviceId" | "publicKeySpki" | "sign">;

export function makeDeviceDoc(device: DeviceSigner, neighbours: Record<string, number>, name?: string, now = Date.now(), onion?: string, readers?: Array<{ id: string; key: Buffer }>, rotatedFrom?: RotationStatement): DeviceDoc {
  const _id = deviceDocId(device.deviceId);
  const sealed = readers && sealNeighbours(device.deviceId, _id, now, neighbours, readers);
  const unsigned: Omit<DeviceDoc, "sig"> = { _id, type: "mesh-device", id: device.deviceId, key: device.publicKeySpki.toString("base64"), ...(name ? { name } : {}), neighbours: sealed ? {} : neighbours, ...(onion ? { onion } : {}), ...(sealed ? { sealed } : {}), ...(rotatedFrom ? { rotatedFrom } : {}), updated: now };
  return { ...unsigned, sig: device.sign(deviceSignedBytes(unsigned)).toString("base64") };
}

export function verifyDeviceDoc(input: unknown): DeviceDoc {
  const doc = (input ?? {}) as Partial<DeviceDoc>;
  const label = typeof doc._id === "string" ? doc._id : "a mesh device document";
  if (doc.type !== "mesh-device" || !isDeviceId(doc.id) || doc._id !== deviceDocId(doc.id) || typeof doc.sig !== "string" || !Number.isSafeInteger(doc.updated)) throw new EnvelopeError(`${label} is malformed`);
  assertOnlyFields(doc, DEVICE_FIELDS, label);
  if (typeof doc.neighbours !== "object" || doc.neighbours === null || Object.keys(doc.neighbours).length > 1000) throw new EnvelopeError(`${label} has malformed neighbours`);
  if (!Object.entries(doc.neighbours).every(([id, seen]) => isDeviceId(id) && Number.isSafeInteger(seen))) throw new EnvelopeError(`${label} has malformed neighbours`);
  // A link is recorded when the document is written: one "seen" later than that is made up (it would stay fresh for routing).
  if (Object.values(doc.neighbours).some((seen) => seen > doc.updated!)) throw new EnvelopeError(`${label} lists a neighbour seen after the document was written`);
  if (doc.name !== undefined && (typeof doc.name !== "string" || doc.name.length > 64)) throw new EnvelopeError(`${label} has a malformed name`);
  if (doc.onion !== undefined && (typeof doc.onion !== "string" || !isOnionHostPort(doc.onion))) throw new EnvelopeError(`${label} has a malformed onion address`);
  if (doc.sealed !== undefined) {
    const { epk, readers, data } = doc.sealed as Partial<SealedNeighbours>;
    const wellFormed = typeof epk === "string" && epk.length < 200 && typeof data === "string" && data.length < 100_000 && Array.isArray(readers) && readers.length <= MAX_NEIGHBOUR_READERS && readers.every((key) => typeof key === "string" && key.length < 200);
    if (!wellFormed || Object.keys(doc.neighbours).length > 0) throw new EnvelopeError(`${label} has malformed sealed neighbours`);
  }
  if (doc.rotatedFrom !== undefined) {
    let statement: RotationStatement;
    try {
      statement = verifyRotation(doc.rotatedFrom);
    } catch (err) {
      throw new EnvelopeError(`${label} carries a key rotation that does not verify (${(err as Error).message})`);
    }
    if (statement.to !== doc.id) throw new EnvelopeError(`${label} carries a key rotation to another device`);
  }
  checkSigner(label, doc.id, doc.key, deviceSignedBytes(doc as DeviceDoc), doc.sig);
  return doc as DeviceDoc;
}

function checkSigner(label: string, id: string, key: unknown, signed: Buffer, sig: string): void {
  let publicKey: KeyObject;
  try {
    publicKey = publicKeyOf(Buffer.from(String(key), "base64"));
  } catch (err) {
    throw new EnvelopeError(`${label} carries an unreadable key (${(err as Error).message})`);
  }
  if (deviceIdOf(publicKey) !== id) throw new EnvelopeError(`${label} carries a key that is not its signer's`);
  if (!verify("sha256", signed, publicKey, Buffer.from(sig, "base64"))) throw new EnvelopeError(`${label} has a signature that does not match its content (altered on the way?)`);
}

/** The exact bytes signed: every field that carries meaning, in a fixed order. */
export function messageSignedBytes(doc: Omit<MessageDoc, "sig" | "_attachments">): Buffer {
  const recipients = doc.recipients.map((r) => [r.id, r.key]);
  return Buffer.from(JSON.stringify(["mesh-msg/1", doc._id, doc.from, doc.to, recipients, doc.epk, doc.mode, doc.priority, doc.created, doc.expires, doc.bodyHash, doc.size]));
}

export function ackSignedBytes(doc: Omit<AckDoc, "sig">): Buffer {
  return Buffer.from(JSON.stringify(["mesh-ack/1", doc._id, doc.msg, doc.from, doc.to, doc.mode, doc.created, doc.expires]));
}

export function deviceSignedBytes(doc: Omit<DeviceDoc, "sig">): Buffer {
  const neighbours = Object.entries(doc.neighbours).sort(([a], [b]) => (a < b ? -1 : 1));
  const signed: unknown[] = ["mesh-device/1", doc._id, doc.id, doc.key, doc.name ?? null, neighbours, doc.updated];
  // Appended only when present, so documents without one sign exactly as before.
  if (doc.onion !== undefined) signed.push(doc.onion);
  if (doc.sealed !== undefined) signed.push(["sealed", doc.sealed.epk, doc.sealed.readers, doc.sealed.data]);
  if (doc.rotatedFrom !== undefined) signed.push(["rotatedFrom", doc.rotatedFrom.from, doc.rotatedFrom.sig]);
  return Buffer.from(JSON.stringify(signed));
}

/** Encrypts a device's neighbours once, and wraps the key for each reader (as a message's body and recipients). */
function sealNeighbours(deviceId: string, docId: string, updated: number, neighbours: Record<string, number>, readers: Array<{ id: string; key: Buffer }>): SealedNeighbours {
  const salt = `${docId}@${updated}`;
  const contentKey = randomBytes(32);
  const ephemeral = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const wrapped = readers.slice(0, MAX_NEIGHBOUR_READERS).map(({ id, key }) => {
    const shared = diffieHellman({ privateKey: ephemeral.privateKey, publicKey: publicKeyOf(key) });
    return aesSeal(wrappingKey(shared, salt, id, deviceId), contentKey, wrapAad(id, deviceId)).toString("base64");
  });
  for (let i = wrapped.length - 1; i > 0; i--) {
    const j = randomBytes(4).readUInt32BE(0) % (i + 1);
    [wrapped[i], wrapped[j]] = [wrapped[j], wrapped[i]];
  }
  return {
    epk: ephemeral.publicKey.export({ type: "spki", format: "der" }).toString("base64"),
    readers: wrapped,
    data: aesSeal(contentKey, Buffer.from(JSON.stringify(neighbours)), bodyAad(salt, deviceId)).toString("base64"),
  };
}

/**
 * The neighbours a (verified) device document lists: in the clear, or sealed and readable by `reader`;
 * undefined when sealed to others (a relay that may not relay for it learns nothing of its links).
 */
export function neighboursOf(doc: DeviceDoc, reader: Identity): Record<string, number> | undefined {
  if (!doc.sealed) return doc.neighbours;
  try {
    const salt = `${doc._id}@${doc.updated}`;
    const shared = diffieHellman({ privateKey: reader.privateKeyObject, publicKey: publicKeyOf(Buffer.from(doc.sealed.epk, "base64")) });
    const unwrapKey = wrappingKey(shared, salt, reader.deviceId, doc.id);
    let contentKey: Buffer | undefined;
    for (const wrapped of doc.sealed.readers) {
      try {
        contentKey = aesOpen(unwrapKey, Buffer.from(wrapped, "base64"), wrapAad(reader.deviceId, doc.id));
        break;
      } catch {
        // someone else's
      }
    }
    if (!contentKey) return undefined;
    const neighbours = JSON.parse(aesOpen(contentKey, Buffer.from(doc.sealed.data, "base64"), bodyAad(salt, doc.id)).toString("utf8")) as Record<string, number>;
    const valid = Object.entries(neighbours).every(([id, seen]) => isDeviceId(id) && Number.isSafeInteger(seen) && seen <= doc.updated);
    return valid ? neighbours : undefined;
  } catch {
    return undefined;
  }
}

/** A device's (or an ephemeral) public key from SPKI DER: EC P-256 only. */
export function publicKeyOf(spki: Buffer): KeyObject {
  return deviceKeyFromSpki(spki);
}

/*
 * The sender's id is bound into the key wrap and the body: a relay that re-signs a sealed message under
 * its own key (new from/fromKey/sig, same ciphertext) would otherwise have it opened as its own message.
 * With `from` in the HKDF info and in both AADs, such a copy no longer decrypts.
 */
function wrappingKey(shared: Buffer, messageId: string, recipient: string, sender: string): Buffer {
  return Buffer.from(hkdfSync("sha256", shared, Buffer.from(messageId), Buffer.concat([WRAP_INFO, Buffer.from(`${recipient}\u0000${sender}`)]), 32));
}

function wrapAad(recipient: string, sender: string): Buffer {
  return Buffer.from(`${recipient}\u0000${sender}`);
}

function bodyAad(messageId: string, sender: string): Buffer {
  return Buffer.from(`${messageId}\u0000${sender}`);
}

/** AES-256-GCM: iv (12) | tag (16) | ciphertext. */
function aesSeal(key: Buffer, plaintext: Buffer, aad: Buffer): Buffer {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, iv).setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), ciphertext]);
}

function aesOpen(key: Buffer, sealed: Buffer, aad: Buffer): Buffer {
  const decipher = createDecipheriv("aes-256-gcm", key, sealed.subarray(0, 12)).setAAD(aad);
  decipher.setAuthTag(sealed.subarray(12, 28));
  return Buffer.concat([decipher.update(sealed.subarray(28)), decipher.final()]);
}
