import { Identity } from "../../lib";

/** Two identity-config nodes that know each other, with credentials, as an editor deploy would make them. */
export function identityPair(options: { aPort?: number; bPort?: number } = {}) {
  const a = Identity.generate();
  const b = Identity.generate();
  return {
    a,
    b,
    nodes: (bAddress: string) => [
      { id: "idA", type: "identity-config", name: "device A", host: "127.0.0.1", port: options.aPort ?? 0, peers: [{ id: b.deviceId, name: "B", address: bAddress }] },
      { id: "idB", type: "identity-config", name: "device B", host: "127.0.0.1", port: options.bPort ?? 0, peers: [{ id: a.deviceId, name: "A", address: "" }] },
    ],
    credentials: {
      idA: { privateKey: a.privateKeyPem, certificate: a.certificatePem },
      idB: { privateKey: b.privateKeyPem, certificate: b.certificatePem },
    },
  };
}

export { freePort } from "../helpers/ports";
