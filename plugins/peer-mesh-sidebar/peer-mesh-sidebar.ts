import type { Request, Response } from "express";
import type { NodeAPI } from "node-red";
import { prometheusText, type Device, type PeerInfo } from "../../lib";
import { redeliveryMetrics } from "../../nodes/shared/redelivery";
import { diagnostics, RecentEvents } from "./diagnostics";
import { runningIdentities } from "../../nodes/shared/running-identities";
import { overview } from "./overview";

const TOPIC = "peer-mesh/overview";
/** Updates at most this often: a busy mesh must not flood the editor's websocket. */
const PUBLISH_EVERY_MS = 1_000;

interface PluginApi {
  registerPlugin(id: string, definition: { type: string }): void;
}

/**
 * The runtime half of the editor's "peer mesh" sidebar tab: GET /peer-mesh/overview answers the current
 * picture, and every change (a peer found or lost, a sync session, an identity deployed) publishes a new
 * one on the editor's comms, so the tab updates live.
 */
export = (RED: NodeAPI): void => {
  (RED as unknown as { plugins: PluginApi }).plugins.registerPlugin("peer-mesh-sidebar", { type: "peer-mesh-sidebar" });
  const comms = (RED as unknown as { comms: { publish(topic: string, data: unknown, retain: boolean): void } }).comms;

  let timer: NodeJS.Timeout | undefined;
  const publish = (): void => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      comms.publish(TOPIC, overview(runningIdentities.list()), true);
    }, PUBLISH_EVERY_MS);
    timer.unref();
  };

  // Follows the devices that are running now; an identity redeployed is a new device.
  let unbind: Array<() => void> = [];
  const recent = new RecentEvents();
  const bind = (): void => {
    unbind.forEach((off) => off());
    unbind = runningIdentities.list().flatMap(({ device }) => [follow(device, publish), recent.follow(device)]);
    publish();
  };
  runningIdentities.on("change", bind);
  bind();

  RED.httpAdmin.get("/peer-mesh/overview", RED.auth.needsPermission("identity-config.read"), (_req: Request, res: Response) => {
    res.json(overview(runningIdentities.list()));
  });
  // For a Prometheus scrape (with adminAuth on, a bearer token of a user who may read identities).
  RED.httpAdmin.get("/peer-mesh/metrics", RED.auth.needsPermission("identity-config.read"), (_req: Request, res: Response) => {
    res.type("text/plain; version=0.0.4; charset=utf-8").send(prometheusText(runningIdentities.list().map(({ device, name }) => ({ device, name }))) + redeliveryMetrics());
  });
  // The sidebar's "download diagnostics": versions, settings without secrets, state, counters, recent events.
  RED.httpAdmin.get("/peer-mesh/diagnostics", RED.auth.needsPermission("identity-config.read"), (_req: Request, res: Response) => {
    // RED.version() is a string in the runtime's node API, typed as a promise: either way, awaited.
    Promise.resolve(RED.version() as unknown as string | Promise<string>).then((version) => {
      res.attachment(`peer-mesh-diagnostics-${new Date().toISOString().replace(/[:.]/g, "-")}.json`).json(diagnostics(runningIdentities.list(), recent, String(version)));
    }, (err: Error) => res.status(500).json({ error: err.message }));
  });
};

function follow(device: Device, changed: () => void): () => void {
  const onPeer = (_peer: PeerInfo): void => changed();
  device.peerTable.on("found", onPeer);
  device.peerTable.on("lost", onPeer);
  device.peerTable.on("changed", onPeer);
  device.on("synced", changed);
  device.on("tor", changed);
  device.on("key-changed", changed);
  return () => {
    device.off("key-changed", changed);
    device.off("tor", changed);
    device.peerTable.off("found", onPeer);
    device.peerTable.off("lost", onPeer);
    device.peerTable.off("changed", onPeer);
    device.off("synced", changed);
  };
}
