import { createPublicKey, KeyObject } from "node:crypto";

/**
 * Device keys are EC P-256 and nothing else, wherever a key is accepted (TLS peers, group owners, mesh
 * signers, the recipients and ephemeral keys of sealed messages): one curve means one set of
 * assumptions to review, and it keeps out RSA-1024 and other keys a stranger might bring to grind ids.
 */
export const DEVICE_KEY_CURVE = "prime256v1";

export function isDeviceKey(key: KeyObject): boolean {
  return key.type === "public" && key.asymmetricKeyType === "ec" && key.asymmetricKeyDetails?.namedCurve === DEVICE_KEY_CURVE;
}

/** Reads a DER SubjectPublicKeyInfo and requires an EC P-256 key; throws saying which kind it was otherwise. */
export function deviceKeyFromSpki(spki: Buffer): KeyObject {
  const key = createPublicKey({ key: spki, format: "der", type: "spki" });
  if (!isDeviceKey(key)) throw new Error(`the key is ${describeKey(key)}, not EC P-256`);
  return key;
}

export function describeKey(key: KeyObject): string {
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === "ec") return `EC ${details?.namedCurve ?? "of an unknown curve"}`;
  if (key.asymmetricKeyType === "rsa" || key.asymmetricKeyType === "rsa-pss") return `${key.asymmetricKeyType.toUpperCase()}-${details?.modulusLength ?? "?"}`;
  return key.asymmetricKeyType ?? "of an unknown type";
}
