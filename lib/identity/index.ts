export { Identity, IdentityError, type GenerateOptions } from "./identity";
export { deviceIdOf, deviceIdOfSpki, isDeviceId, shortId, base32, matchDeviceIds, MIN_ID_PREFIX } from "./device-id";
export { verifyPeerCertificate, verifiedPeer, spkiOf, CertificateError } from "./verify";
export { deviceKeyFromSpki, isDeviceKey, describeKey } from "./device-key";
export { signRotation, verifyRotation, RotationError, type RotationStatement } from "./rotation";
