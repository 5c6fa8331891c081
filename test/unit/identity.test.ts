import should from "should";
import { X509Certificate } from "node:crypto";
import { CertificateError, Identity, IdentityError, verifyPeerCertificate } from "../../lib";
import { certificateSerial } from "../../lib/identity/certificate";

describe("Identity", () => {
  it("generates a P-256 key and a valid self-signed certificate whose key gives the device id", () => {
    const identity = Identity.generate({ name: "press-7" });
    const certificate = new X509Certificate(identity.certificatePem);
    should(certificate.publicKey.asymmetricKeyType).equal("ec");
    should(certificate.verify(certificate.publicKey)).be.true();
    should(certificate.subject).equal("CN=press-7");
    should(certificate.ca).be.false();
    should(verifyPeerCertificate(certificate)).equal(identity.deviceId);
    should(identity.validTo.getTime()).be.above(Date.now() + 9 * 365 * 86_400_000);
  });

  it("gives every generated identity its own id", () => {
    const ids = new Set(Array.from({ length: 20 }, () => Identity.generate().deviceId));
    should(ids.size).equal(20);
  });

  it("encodes every serial as a minimal positive DER INTEGER, whatever the random bytes (OpenSSL 3 refuses padding)", () => {
    for (let first = 0; first < 256; first++) {
      for (const second of [0x00, 0x7f, 0x80, 0xff]) {
        const serial = certificateSerial(Uint8Array.from([first, second, 1, 2]));
        should(serial[0] >= 0x40 && serial[0] <= 0x7f).be.true(`first byte ${first} gave ${serial[0]}`);
        should(Array.from(serial.subarray(1))).eql([second, 1, 2]);
      }
    }
  });

  it("round-trips through PEM (credentials) and through the PEM bundle (export/import)", () => {
    const identity = Identity.generate();
    should(Identity.fromPem(identity.privateKeyPem, identity.certificatePem).deviceId).equal(identity.deviceId);
    should(Identity.fromBundlePem(identity.toBundlePem()).deviceId).equal(identity.deviceId);
    const reversed = identity.certificatePem + "\nsome notes\n" + identity.privateKeyPem;
    should(Identity.fromBundlePem(reversed).deviceId).equal(identity.deviceId);
  });

  it("refuses a key that does not belong to the certificate, and unreadable PEM, with a clear error", () => {
    const one = Identity.generate();
    const other = Identity.generate();
    should(() => Identity.fromPem(other.privateKeyPem, one.certificatePem)).throw(IdentityError, { message: /does not belong/ });
    should(() => Identity.fromPem("not a key", one.certificatePem)).throw(IdentityError, { message: /private key cannot be read/ });
    should(() => Identity.fromPem(one.privateKeyPem, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----")).throw(IdentityError, { message: /certificate cannot be read/ });
    should(() => Identity.fromBundlePem(one.certificatePem)).throw(IdentityError, { message: /no private key/ });
    should(() => Identity.fromBundlePem(one.privateKeyPem)).throw(IdentityError, { message: /no certificate/ });
  });

  it("refuses expired, not yet valid and altered certificates", () => {
    const year = 365 * 86_400_000;
    const expired = Identity.generate({ notBefore: new Date(Date.now() - 2 * year), notAfter: new Date(Date.now() - year) });
    should(() => verifyPeerCertificate(new X509Certificate(expired.certificatePem))).throw(CertificateError, { message: /expired/ });
    const future = Identity.generate({ notBefore: new Date(Date.now() + year), notAfter: new Date(Date.now() + 2 * year) });
    should(() => verifyPeerCertificate(new X509Certificate(future.certificatePem))).throw(CertificateError, { message: /not yet valid/ });
    should(() => verifyPeerCertificate(tamperedCertificate(Identity.generate({ name: "sensor-A" }).certificatePem, "sensor-A", "sensor-B"))).throw(CertificateError, { message: /not validly self-signed/ });
    should(() => verifyPeerCertificate(undefined)).throw(CertificateError, { message: /no certificate/ });
  });

  it("builds its TLS context once", () => {
    const identity = Identity.generate();
    should(identity.tlsContext()).equal(identity.tlsContext());
  });
});

/** The certificate with a subject string replaced in its DER: the signature no longer matches. */
export function tamperedCertificate(pem: string, from: string, to: string): X509Certificate {
  const der = Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ""), "base64");
  const at = der.indexOf(Buffer.from(from));
  if (at < 0 || from.length !== to.length) throw new Error("cannot tamper: subject not found");
  Buffer.from(to).copy(der, at);
  return new X509Certificate(der);
}
