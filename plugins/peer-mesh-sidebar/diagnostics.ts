import os from "node:os";
import path from "node:path";
import fs from "node:fs";
import type { Device } from "../../lib";
import type { RunningIdentity } from "../../nodes/shared/running-identities";
import { overview } from "./overview";

/** Something a device told its user lately (a warning, a refusal, a rejected document, a full disk). */
export interface RecentEvent {
  at: number;
  kind: "warning" | "refused" | "rejected" | "storage-full";
  message: string;
}

/** Events kept per device: enough to see a pattern, not a log. */
const KEEP = 50;

/** The last KEEP events of each running device, newest last; a device forgotten with its identity. */
export class RecentEvents {
  private readonly byDevice = new WeakMap<Device, RecentEvent[]>();

  /** Starts keeping `device`'s events; returns the undo. */
  follow(device: Device): () => void {
    const keep = (kind: RecentEvent["kind"]) => (message: string): void => {
      let events = this.byDevice.get(device);
      if (!events) this.byDevice.set(device, (events = []));
      events.push({ at: Date.now(), kind, message });
      if (events.length > KEEP) events.splice(0, events.length - KEEP);
    };
    const onWarning = (err: Error, transport: string): void => keep("warning")(`${transport}: ${err.message}`);
    const onRefused = (info: { peerId?: string; kind: string; reason: string }): void => keep("refused")(`${info.kind}${info.peerId ? ` ${info.peerId.slice(0, 8)}` : ""}: ${info.reason}`);
    const onRejected = (info: { id: string; reason: string }): void => keep("rejected")(`${info.id}: ${info.reason}`);
    const onFull = (database: string, err: Error): void => keep("storage-full")(`${database}: ${err.message}`);
    device.on("warning", onWarning);
    device.on("refused", onRefused);
    device.on("rejected", onRejected);
    device.on("storage-full", onFull);
    return () => {
      device.off("warning", onWarning);
      device.off("refused", onRefused);
      device.off("rejected", onRejected);
      device.off("storage-full", onFull);
    };
  }

  of(device: Device): RecentEvent[] {
    return [...(this.byDevice.get(device) ?? [])];
  }
}

function packageVersion(): string {
  try {
    return (JSON.parse(fs.readFileSync(path.resolve(__dirname, "..", "..", "..", "package.json"), "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
}

/**
 * What support needs to see what a Node-RED's peer mesh is doing, without a secret in it: versions, each
 * identity's settings and state (known peers, peers in range, storage, transports, Tor), its traffic
 * counters and its recent warnings and refusals. Private keys, credentials and message contents are
 * never in it.
 */
export function diagnostics(identities: RunningIdentity[], recent: RecentEvents, nodeRedVersion: string) {
  const pictures = new Map(overview(identities).map((picture) => [picture.nodeId, picture]));
  return {
    generatedAt: new Date().toISOString(),
    versions: { package: packageVersion(), nodeRed: nodeRedVersion, node: process.version, openssl: process.versions.openssl, platform: `${os.platform()} ${os.release()} ${os.arch()}` },
    identities: identities.map(({ nodeId, name, device, host, port, network }) => ({
      nodeId,
      name,
      deviceId: device.id,
      listening: { host, port },
      network,
      knownPeers: device.peers.list(),
      storageError: device.storageError?.message,
      unavailableTransports: device.unavailableTransports,
      connections: device.connections,
      overview: pictures.get(nodeId),
      traffic: {
        byPeer: Object.fromEntries(device.traffic.byPeer),
        refusedByKind: Object.fromEntries(device.traffic.refusedByKind),
        sync: Object.fromEntries([...device.traffic.bySync].map(([peer, databases]) => [peer, Object.fromEntries(databases)])),
      },
      recentEvents: recent.of(device),
    })),
  };
}
