import { generateKeyPairSync, sign } from "node:crypto";
import { deviceIdOf } from "../../lib/identity/device-id";
import type { DeviceSigner } from "../../lib/mesh/envelope";

/** A document as replication carries it: with a revision and its history (what `new_edits: false` takes). */
export const withRev = <T extends { _id: string }>(doc: T) => ({ ...doc, _rev: "1-0123456789abcdef0123456789abcdef", _revisions: { start: 1, ids: ["0123456789abcdef0123456789abcdef"] } });

/** A device document signer from a bare key pair: what a made-up device needs, without an identity's certificate. */
export function keyPairSigner(): DeviceSigner {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return {
    deviceId: deviceIdOf(publicKey),
    publicKeySpki: publicKey.export({ type: "spki", format: "der" }),
    sign: (data: Buffer | string) => sign("sha256", typeof data === "string" ? Buffer.from(data) : data, privateKey),
  };
}
