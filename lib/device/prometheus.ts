import type { Device } from "./device";

/** One identity of a process, as the metrics label it. */
export interface MeteredDevice {
  device: Device;
  /** The identity's name in the flows, if it has one. */
  name?: string;
}

type Labels = Record<string, string>;
interface Sample {
  labels: Labels;
  value: number;
}
interface Family {
  name: string;
  type: "gauge" | "counter";
  help: string;
  samples: Sample[];
}

/**
 * The devices' state and traffic in Prometheus' text format (version 0.0.4): peers in range,
 * connections, messages, streams and bytes per peer, refusals by kind, replication per peer and
 * database, the mesh store and Tor. Every sample carries the device id (and the identity's name), so one
 * scrape of a Node-RED with several identities keeps them apart.
 */
export function prometheusText(devices: MeteredDevice[], now = Date.now()): string {
  const families = new Map<string, Family>();
  const add = (name: string, type: Family["type"], help: string, labels: Labels, value: number): void => {
    let family = families.get(name);
    if (!family) families.set(name, (family = { name, type, help, samples: [] }));
    family.samples.push({ labels, value });
  };
  for (const { device, name } of devices) {
    const own: Labels = { device: device.id, ...(name ? { identity: name } : {}) };
    add("peer_mesh_peers_in_range", "gauge", "Peers some transport sees now.", own, device.peerTable.size);
    const connections = device.connections;
    add("peer_mesh_connections", "gauge", "Open mutual-TLS connections: to this device's listener (in) and its own to peers (out).", { ...own, direction: "in" }, connections.in);
    add("peer_mesh_connections", "gauge", "Open mutual-TLS connections: to this device's listener (in) and its own to peers (out).", { ...own, direction: "out" }, connections.out);
    for (const [peer, traffic] of device.traffic.byPeer) {
      const labels = { ...own, peer, peer_name: device.peers.nameOf(peer) ?? "" };
      const help = "Messages and streams delivered, by peer and direction.";
      add("peer_mesh_messages_total", "counter", help, { ...labels, direction: "in", kind: "message" }, traffic.messagesIn);
      add("peer_mesh_messages_total", "counter", help, { ...labels, direction: "out", kind: "message" }, traffic.messagesOut);
      add("peer_mesh_messages_total", "counter", help, { ...labels, direction: "in", kind: "stream" }, traffic.streamsIn);
      add("peer_mesh_messages_total", "counter", help, { ...labels, direction: "out", kind: "stream" }, traffic.streamsOut);
      add("peer_mesh_bytes_total", "counter", "Bytes of message and stream bodies, by peer and direction.", { ...labels, direction: "in" }, traffic.bytesIn);
      add("peer_mesh_bytes_total", "counter", "Bytes of message and stream bodies, by peer and direction.", { ...labels, direction: "out" }, traffic.bytesOut);
    }
    for (const [kind, count] of device.traffic.refusedByKind) add("peer_mesh_refused_total", "counter", "Requests and connections refused, by kind (tls, certificate, unknown-key, strangers, connections, resets, acl, revoked, database).", { ...own, kind }, count);
    for (const [peer, databases] of device.traffic.bySync) {
      for (const [database, sync] of databases) {
        const labels = { ...own, peer, database };
        if (sync.lastAt > 0) add("peer_mesh_replication_lag_seconds", "gauge", "Seconds since the last sync session with the peer that ended without an error.", labels, Math.round((now - sync.lastAt) / 1000));
        add("peer_mesh_replication_sessions_total", "counter", "Sync sessions, by peer and database (mesh: store-and-forward documents).", labels, sync.sessions);
        add("peer_mesh_replication_docs_written_total", "counter", "Documents the sync sessions wrote, on either side.", labels, sync.docsWritten);
        add("peer_mesh_replication_failures_total", "counter", "Documents the sync sessions could not write (refused or failed).", labels, sync.failures);
        add("peer_mesh_replication_bytes_total", "counter", "Bytes the sync sessions moved, by direction.", { ...labels, direction: "in" }, sync.bytesIn);
        add("peer_mesh_replication_bytes_total", "counter", "Bytes the sync sessions moved, by direction.", { ...labels, direction: "out" }, sync.bytesOut);
      }
    }
    for (const [database, byReason] of device.traffic.purgedByDatabase) {
      for (const [reason, count] of byReason) add("peer_mesh_purged_documents_total", "counter", "Documents purged from a database on this device only (peers keep theirs), by reason: size cap, age, or a flow's msg.purge.", { ...own, database, reason }, count);
    }
    for (const [database, bytes] of device.databases.sizes()) add("peer_mesh_database_bytes", "gauge", "Bytes a database takes on this device's disk (its LevelDB files).", { ...own, database }, bytes);
    const mesh = meshOf(device);
    if (mesh) {
      add("peer_mesh_store_documents", "gauge", "Store-and-forward documents held, by kind.", { ...own, kind: "message" }, mesh.storedMessages);
      add("peer_mesh_store_documents", "gauge", "Store-and-forward documents held, by kind.", { ...own, kind: "ack" }, mesh.storedAcks);
    }
    add("peer_mesh_storage_ok", "gauge", "1 when the identity's storage opened, 0 when it failed (full disk, damage, a lock).", own, device.storageError === undefined ? 1 : 0);
    const tor = device.torStatus;
    if (tor) {
      add("peer_mesh_tor_bootstrap_percent", "gauge", "Tor's bootstrap progress.", own, tor.progress);
      add("peer_mesh_tor_published", "gauge", "1 when this device's onion service descriptor is published.", own, tor.published ? 1 : 0);
    }
  }
  return [...families.values()].map(render).join("");
}

/** The device's mesh store, unless it has none (no storage directory, not started, or its storage failed). */
function meshOf(device: Device): { storedMessages: number; storedAcks: number } | undefined {
  try {
    return device.mesh;
  } catch {
    return undefined;
  }
}

function render(family: Family): string {
  const lines = [`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} ${family.type}`];
  for (const sample of family.samples) lines.push(`${family.name}{${Object.entries(sample.labels).map(([key, value]) => `${key}="${escapeLabel(value)}"`).join(",")}} ${sample.value}`);
  return `${lines.join("\n")}\n`;
}

/** Label values escape backslash, double quote and line feed (the text format's rules). */
function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}
