import type { Request, Response } from "express";
import type { NodeAPI } from "node-red";
import QRCode from "qrcode";
import { type Device, Identity, signRotation } from "../../lib";
import type { IdentityConfigNode } from "../shared/identity-node";

/**
 * The editor's routes for identities (behind the identity-config permissions): making and importing a
 * key, and for a deployed identity its id, pairing code, pairings and a PEM backup.
 */
export function registerAdminApi(RED: NodeAPI): void {
  const send = (res: Response, work: () => unknown): void => {
    try {
      res.json(work());
    } catch (err) {
      res.status(400).json({ error: (err as Error).message });
    }
  };
  const describe = (identity: Identity) => ({ deviceId: identity.deviceId, shortId: identity.shortId, certificate: identity.certificatePem, validTo: identity.validTo.toISOString() });

  // A fresh identity for a new config node; the dialog keeps it in the node's credentials.
  RED.httpAdmin.post("/peer-mesh/identity/generate", RED.auth.needsPermission("identity-config.write"), (req: Request, res: Response) =>
    send(res, () => {
      const identity = Identity.generate({ name: typeof req.body?.name === "string" && req.body.name ? req.body.name : undefined });
      return { ...describe(identity), privateKey: identity.privateKeyPem };
    }),
  );
  // Checks a pasted PEM bundle (import) and tells the dialog its device id.
  RED.httpAdmin.post("/peer-mesh/identity/inspect", RED.auth.needsPermission("identity-config.write"), (req: Request, res: Response) =>
    send(res, () => {
      const identity = Identity.fromBundlePem(String(req.body?.pem ?? ""));
      return { ...describe(identity), privateKey: identity.privateKeyPem };
    }),
  );
  // The running identity of a deployed config node: id and port, without the key.
  /** The device of the deployed config node named in the URL; answers 404 itself when there is none. */
  const deployed = (req: Request, res: Response): Device | undefined => {
    const node = RED.nodes.getNode(String(req.params.id)) as IdentityConfigNode | null;
    if (!node?.device) res.status(404).json({ error: "not deployed" });
    return node?.device;
  };
  RED.httpAdmin.get("/peer-mesh/identity/:id", RED.auth.needsPermission("identity-config.read"), (req: Request, res: Response) => {
    const device = deployed(req, res);
    if (device) res.json({ ...describe(device.identity), port: device.port ?? null });
  });
  const answer = (res: Response, work: () => Promise<unknown>): void => {
    work().then(
      (result) => res.json(result),
      (err: { message?: string; code?: string }) => res.status(err.code === "NOT_FOUND" ? 404 : 400).json({ error: err.message ?? String(err), code: err.code }),
    );
  };
  // This device's pairing code, as text and as a QR code (SVG) for a phone or another device to scan.
  RED.httpAdmin.get("/peer-mesh/identity/:id/pairing-code", RED.auth.needsPermission("identity-config.read"), (req: Request, res: Response) => {
    const device = deployed(req, res);
    if (device) answer(res, async () => ({ code: device.pairing.code(), svg: await QRCode.toString(device.pairing.code(), { type: "svg", margin: 1, errorCorrectionLevel: "M" }) }));
  });
  // Pairing requests waiting for this user's confirmation, incoming and outgoing, with their six digits.
  RED.httpAdmin.get("/peer-mesh/identity/:id/pairings", RED.auth.needsPermission("identity-config.read"), (req: Request, res: Response) => {
    const device = deployed(req, res);
    if (device) res.json(device.pairing.list());
  });
  // The peers this identity paired with (kept with its storage; not part of the flow's known peers).
  RED.httpAdmin.get("/peer-mesh/identity/:id/paired", RED.auth.needsPermission("identity-config.read"), (req: Request, res: Response) => {
    const device = deployed(req, res);
    if (device) res.json(device.pairing.paired());
  });
  // Asks the device behind a code (typed or scanned) to pair.
  RED.httpAdmin.post("/peer-mesh/identity/:id/pairings", RED.auth.needsPermission("identity-config.write"), (req: Request, res: Response) => {
    const device = deployed(req, res);
    if (device) answer(res, () => device.pairing.request(String(req.body?.code ?? "")));
  });
  // Confirms with the digits the other device shows; the peer joins the chosen group.
  RED.httpAdmin.post("/peer-mesh/identity/:id/pairings/:request/confirm", RED.auth.needsPermission("identity-config.write"), (req: Request, res: Response) => {
    const device = deployed(req, res);
    const sas = typeof req.body?.sas === "string" ? req.body.sas : "";
    if (device) answer(res, () => device.pairing.confirm(String(req.params.request), { group: String(req.body?.group || "paired"), sas }));
  });
  RED.httpAdmin.delete("/peer-mesh/identity/:id/pairings/:request", RED.auth.needsPermission("identity-config.write"), (req: Request, res: Response) => {
    const device = deployed(req, res);
    if (device) res.json({ removed: device.pairing.reject(String(req.params.request)) });
  });
  // A new key for a deployed identity, with the statement its current key signs: the dialog keeps both in
  // the credentials, and the deploy moves the identity (and its storage) to the new key.
  RED.httpAdmin.post("/peer-mesh/identity/:id/rotate", RED.auth.needsPermission("identity-config.write"), (req: Request, res: Response) => {
    const device = deployed(req, res);
    if (!device) return;
    send(res, () => {
      const next = Identity.generate();
      return { ...describe(next), privateKey: next.privateKeyPem, rotation: JSON.stringify(signRotation(device.identity, next)) };
    });
  });
  // PEM backup of a deployed identity (key and certificate).
  RED.httpAdmin.get("/peer-mesh/identity/:id/export", RED.auth.needsPermission("identity-config.write"), (req: Request, res: Response) => {
    const device = deployed(req, res);
    if (device) res.type("application/x-pem-file").attachment(`device-${device.identity.shortId}.pem`).send(device.identity.toBundlePem());
  });
}
