import { verify } from "node:crypto";
import { deviceIdOf, isDeviceId } from "./device-id";
import { deviceKeyFromSpki } from "./device-key";
import type { Identity } from "./identity";

/**
 * A device's move to a new key: signed by the old key (only its holder can say where it moved) and by
 * the new one (so nobody can claim another device's key as their new one). Peers that verify it let
 * the new key in where they let the old one, and retire the old key: it is refused from then on.
 */
export interface RotationStatement {
  type: "key-rotation";
  /** The old device id, and its public key (DER SPKI, base64). */
  from: string;
  fromKey: string;
  /** The new device id and key. */
  to: string;
  toKey: string;
  /** When the device moved (ms since 1970). */
  at: number;
  /** The old key's signature over the statement. */
  sig: string;
  /** The new key's signature over the statement. */
  proof: string;
}

export class RotationError extends Error {
  readonly code = "BAD_ROTATION";
}

const FIELDS = new Set(["type", "from", "fromKey", "to", "toKey", "at", "sig", "proof"]);

function signedBytes(statement: Omit<RotationStatement, "sig" | "proof">): Buffer {
  return Buffer.from(JSON.stringify(["peer-mesh-rotation/1", statement.from, statement.fromKey, statement.to, statement.toKey, statement.at]));
}

/** The statement that `from` moved to `to`, signed by both. */
export function signRotation(from: Identity, to: Identity, at = Date.now()): RotationStatement {
  if (from.deviceId === to.deviceId) throw new RotationError("a key cannot be rotated to itself");
  const body = { type: "key-rotation" as const, from: from.deviceId, fromKey: from.publicKeySpki.toString("base64"), to: to.deviceId, toKey: to.publicKeySpki.toString("base64"), at };
  const bytes = signedBytes(body);
  return { ...body, sig: from.sign(bytes).toString("base64"), proof: to.sign(bytes).toString("base64") };
}

/** Checks a statement from anywhere: well formed, each key is its id's, and both signatures hold. Throws RotationError saying what is wrong. */
export function verifyRotation(input: unknown): RotationStatement {
  const statement = (input ?? {}) as Partial<RotationStatement>;
  if (typeof statement !== "object" || statement.type !== "key-rotation") throw new RotationError("not a key rotation statement");
  const extra = Object.keys(statement).filter((key) => !FIELDS.has(key));
  if (extra.length > 0) throw new RotationError(`a key rotation statement carries fields that are not signed: ${extra.slice(0, 5).join(", ")}`);
  const { from, fromKey, to, toKey, at, sig, proof } = statement;
  if (!isDeviceId(from) || !isDeviceId(to) || typeof fromKey !== "string" || typeof toKey !== "string" || !Number.isSafeInteger(at) || typeof sig !== "string" || typeof proof !== "string") {
    throw new RotationError("a key rotation statement is malformed");
  }
  if (from === to) throw new RotationError("a key rotation statement names the same key twice");
  const bytes = signedBytes({ type: "key-rotation", from, fromKey, to, toKey, at: at as number });
  for (const [id, key, signature, which] of [[from, fromKey, sig, "old"], [to, toKey, proof, "new"]] as const) {
    let publicKey;
    try {
      publicKey = deviceKeyFromSpki(Buffer.from(key, "base64"));
    } catch (err) {
      throw new RotationError(`the ${which} key of a rotation statement is unreadable (${(err as Error).message})`);
    }
    if (deviceIdOf(publicKey) !== id) throw new RotationError(`the ${which} key of a rotation statement is not ${id.slice(0, 8)}'s`);
    if (!verify("sha256", bytes, publicKey, Buffer.from(signature, "base64"))) throw new RotationError(`the ${which} key's signature on the rotation from ${from.slice(0, 8)} does not match (altered on the way?)`);
  }
  return statement as RotationStatement;
}
