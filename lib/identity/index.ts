export { Identity, IdentityError, type GenerateOptions } from "./identity";
export { deviceIdOf, isDeviceId, shortId, base32, DEVICE_ID_LENGTH } from "./device-id";
export { verifyPeerCertificate, CertificateError } from "./verify";
