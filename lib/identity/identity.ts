import { createPrivateKey, createPublicKey, generateKeyPairSync, KeyObject, sign, X509Certificate } from "node:crypto";
import { SecureContext, createSecureContext } from "node:tls";
import { createSelfSignedCertificate } from "./certificate";
import { deviceIdOf, shortId } from "./device-id";

const DAY_MS = 86_400_000;
export const DEFAULT_VALIDITY_DAYS = 3650;

export interface GenerateOptions {
  /** Shown in the certificate's subject; purely informative, trust is by device id. */
  name?: string;
  validityDays?: number;
  /** For tests of expiry handling. */
  notBefore?: Date;
  notAfter?: Date;
}

export class IdentityError extends Error {
  readonly code = "BAD_IDENTITY";
}

/**
 * A device: its private key, its self-signed certificate and the device id derived from the public key.
 * EC P-256 was measured faster to generate and to handshake than RSA-2048 and gives certificates half the
 * size (which matters over BLE); see the README.
 */
export class Identity {
  readonly deviceId: string;
  readonly certificatePem: string;
  private readonly privateKey: KeyObject;
  private secureContext?: SecureContext;

  private constructor(privateKey: KeyObject, certificatePem: string) {
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(certificatePem);
    } catch (err) {
      throw new IdentityError(`the certificate cannot be read: ${(err as Error).message}`);
    }
    if (!certificate.checkPrivateKey(privateKey)) {
      throw new IdentityError("the private key does not belong to the certificate");
    }
    this.privateKey = privateKey;
    this.certificatePem = certificate.toString();
    this.deviceId = deviceIdOf(certificate.publicKey);
  }

  static generate(options: GenerateOptions = {}): Identity {
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const notBefore = options.notBefore ?? new Date(Date.now() - DAY_MS); // tolerate clock skew between devices
    const notAfter = options.notAfter ?? new Date(notBefore.getTime() + (options.validityDays ?? DEFAULT_VALIDITY_DAYS) * DAY_MS);
    const commonName = options.name ?? `peer-mesh ${shortId(deviceIdOf(publicKey))}`;
    const certificatePem = createSelfSignedCertificate(privateKey, publicKey, { commonName, notBefore, notAfter });
    return new Identity(privateKey, certificatePem);
  }

  /** Rebuilds an identity from its private key and certificate PEM (as stored in credentials). */
  static fromPem(privateKeyPem: string, certificatePem: string): Identity {
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey(privateKeyPem);
    } catch (err) {
      throw new IdentityError(`the private key cannot be read: ${(err as Error).message}`);
    }
    return new Identity(privateKey, certificatePem);
  }

  /** Reads the single PEM bundle produced by {@link toBundlePem} (key and certificate, any order). */
  static fromBundlePem(bundle: string): Identity {
    const key = /-----BEGIN (?:EC |)PRIVATE KEY-----[\s\S]+?-----END (?:EC |)PRIVATE KEY-----/.exec(bundle);
    const cert = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(bundle);
    if (!key) throw new IdentityError("no private key found in the PEM text");
    if (!cert) throw new IdentityError("no certificate found in the PEM text");
    return Identity.fromPem(key[0], cert[0]);
  }

  get privateKeyPem(): string {
    return this.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  }

  get shortId(): string {
    return shortId(this.deviceId);
  }

  get validTo(): Date {
    return new Date(new X509Certificate(this.certificatePem).validTo);
  }

  /** Key and certificate in one PEM text, for backup or for moving a device. */
  toBundlePem(): string {
    return `${this.privateKeyPem}${this.certificatePem}`;
  }

  /** The public key as DER SubjectPublicKeyInfo, from which the device id is derived. */
  get publicKeySpki(): Buffer {
    return createPublicKey(this.privateKey).export({ type: "spki", format: "der" });
  }

  /** An ECDSA P-256 / SHA-256 signature (DER), verifiable with the public key alone, e.g. on a relayed document. */
  sign(data: Buffer | string): Buffer {
    return sign("sha256", typeof data === "string" ? Buffer.from(data) : data, this.privateKey);
  }

  /** The private key itself, for key agreement (ECDH) when opening a message encrypted to this device. */
  get privateKeyObject(): KeyObject {
    return this.privateKey;
  }

  /** Built once: a TLS context per connection costs ~60 % of handshake throughput (measured). */
  tlsContext(): SecureContext {
    this.secureContext ??= createSecureContext({
      key: this.privateKeyPem,
      cert: this.certificatePem,
      minVersion: "TLSv1.3",
    });
    return this.secureContext;
  }
}
