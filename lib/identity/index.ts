export { Identity, IdentityError, type GenerateOptions } from "./identity";
export { deviceIdOf, isDeviceId, shortId, base32 } from "./device-id";
export { verifyPeerCertificate, CertificateError } from "./verify";
export { deviceKeyFromSpki, isDeviceKey, describeKey } from "./device-key";
