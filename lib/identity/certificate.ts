import { KeyObject, randomBytes, sign } from "node:crypto";
import forge from "node-forge";

const { asn1 } = forge;
const OID_ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2";
const OID_COMMON_NAME = "2.5.4.3";
const OID_BASIC_CONSTRAINTS = "2.5.29.19";
// RFC 5280: dates through 2049 are UTCTime, later ones GeneralizedTime.
const UTC_TIME_LIMIT = Date.UTC(2050, 0, 1);

export interface CertificateOptions {
  commonName: string;
  notBefore: Date;
  notAfter: Date;
}

type Asn1 = forge.asn1.Asn1;

const binary = (buf: Uint8Array): string => Buffer.from(buf).toString("binary");

function sequence(...items: Asn1[]): Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, items);
}

function oid(value: string): Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(value).getBytes());
}

function time(date: Date): Asn1 {
  return date.getTime() < UTC_TIME_LIMIT
    ? asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTCTIME, false, asn1.dateToUtcTime(date))
    : asn1.create(asn1.Class.UNIVERSAL, asn1.Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(date));
}

function name(commonName: string): Asn1 {
  const attribute = sequence(oid(OID_COMMON_NAME), asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTF8, false, forge.util.encodeUtf8(commonName)));
  return sequence(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SET, true, [attribute]));
}

function bitString(bytes: Uint8Array): Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, "\x00" + binary(bytes));
}

/**
 * DER wants the shortest INTEGER encoding and X.509 a positive serial: a leading 0x00 before a byte
 * below 0x80 is "illegal padding" to OpenSSL 3. Clearing the top bit and setting the next one keeps
 * the first byte in 0x40..0x7f, so 126 random bits remain and every serial encodes minimally.
 */
export function certificateSerial(random: Uint8Array): Uint8Array {
  const serial = Uint8Array.from(random);
  serial[0] = (serial[0] & 0x3f) | 0x40;
  return serial;
}

/**
 * A self-signed X.509 v3 certificate for an EC P-256 key. node-forge certifies only RSA keys, so forge
 * serves here as the DER encoder and node:crypto signs; node's X509Certificate and TLS stack read the result.
 */
export function createSelfSignedCertificate(privateKey: KeyObject, publicKey: KeyObject, options: CertificateOptions): string {
  if (privateKey.asymmetricKeyType !== "ec") throw new Error("certificates are issued for EC P-256 keys only");
  const serial = certificateSerial(randomBytes(16));
  const algorithm = sequence(oid(OID_ECDSA_WITH_SHA256));
  const subject = name(options.commonName);
  const spki = asn1.fromDer(binary(publicKey.export({ type: "spki", format: "der" })));
  const basicConstraints = sequence(
    oid(OID_BASIC_CONSTRAINTS),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BOOLEAN, false, "\xff"),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, asn1.toDer(sequence()).getBytes()),
  );
  const tbs = sequence(
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, "\x02")]),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, binary(serial)),
    algorithm,
    subject,
    sequence(time(options.notBefore), time(options.notAfter)),
    subject,
    spki,
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 3, true, [sequence(basicConstraints)]),
  );
  const tbsDer = Buffer.from(asn1.toDer(tbs).getBytes(), "binary");
  const signature = sign("sha256", tbsDer, privateKey);
  const certificate = sequence(tbs, sequence(oid(OID_ECDSA_WITH_SHA256)), bitString(signature));
  const der = Buffer.from(asn1.toDer(certificate).getBytes(), "binary");
  const lines = der.toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join("\n")}\n-----END CERTIFICATE-----\n`;
}
