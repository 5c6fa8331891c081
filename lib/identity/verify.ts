import { X509Certificate } from "node:crypto";
import { deviceIdOfSpki } from "./device-id";
import { describeKey, isDeviceKey } from "./device-key";

export class CertificateError extends Error {
  readonly code = "BAD_CERTIFICATE";
}

/**
 * Checks a peer's self-signed certificate and returns its device id. TLS has already proved that the
 * peer holds the private key; this refuses certificates whose self-signature does not match (altered
 * after signing) and those outside their validity period. No CA is consulted: trust is by device id.
 */
export function verifyPeerCertificate(certificate: X509Certificate | undefined, now: Date = new Date()): string {
  return verifiedPeer(certificate, now).id;
}

/**
 * As verifyPeerCertificate, with the key's DER SubjectPublicKeyInfo too. Each read of a certificate's
 * publicKey parses it anew, and a first message to a new peer checks a certificate at both ends: the key
 * is read once.
 */
export function verifiedPeer(certificate: X509Certificate | undefined, now: Date = new Date()): { id: string; spki: Buffer } {
  if (!certificate) throw new CertificateError("the peer presented no certificate");
  const key = certificate.publicKey;
  if (!isDeviceKey(key)) throw new CertificateError(`the peer's key is ${describeKey(key)}; device keys are EC P-256`);
  if (!certificate.verify(key)) {
    throw new CertificateError("the peer's certificate is not validly self-signed");
  }
  if (now < new Date(certificate.validFrom)) throw new CertificateError("the peer's certificate is not yet valid");
  if (now > new Date(certificate.validTo)) throw new CertificateError("the peer's certificate has expired");
  const spki = key.export({ type: "spki", format: "der" });
  return { id: deviceIdOfSpki(spki), spki };
}

/** The certificate's public key as DER SubjectPublicKeyInfo (what a device id is the hash of). */
export function spkiOf(certificate: X509Certificate): Buffer {
  return certificate.publicKey.export({ type: "spki", format: "der" });
}
