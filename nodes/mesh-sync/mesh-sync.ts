import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from "node-red";
import { ConflictWatcher, Device, isDocumentBody, lowPower, MESH_SYNC_DEFAULTS, MeshMessage, MeshMode, MeshSync, putDocument, SyncReport, Direction, validateRetention, type ConflictPolicy, type PurgeEvent, type RetentionKeeper, type RetentionPolicy } from "../../lib";
import { errorStatus, failureCode, failureReason, shorten, useIdentity } from "../shared/identity-node";
import { migrate, type Migration } from "../shared/migrations";
import { ThrottledStatus } from "../shared/throttled-status";

interface MeshSyncDef extends NodeDef {
  identity?: string;
  /** Databases of the identity to replicate, comma separated. */
  databases?: string;
  direction?: Direction;
  /** Exchange (and relay) store-and-forward messages. */
  mesh?: boolean;
  relay?: boolean;
  /** Peers to sync with (ids or names, comma separated); empty: every peer in range. */
  peers?: string;
  /** Seconds between rounds; 0: as soon as something changes. */
  interval?: number | string;
  maxDocs?: number | string;
  /** Per session, kilobytes of message bodies. */
  maxKb?: number | string;
  mode?: MeshMode;
  /** Default time to live of a message, seconds. */
  ttl?: number | string;
  priority?: number | string;
  /** Seconds before a directed message with no known path floods. */
  fallback?: number | string;
  quotaDocs?: number | string;
  quotaMb?: number | string;
  /** Battery percentage under which syncing pauses. */
  minBattery?: number | string;
  cloudUrl?: string;
  cloudDatabase?: string;
  /** Send every document that arrived (mesh or database) to the events output. */
  outputChanges?: boolean;
  /** Documents edited apart on two devices: "off", "report" (an event; a flow may choose with msg.resolve), or "last-writer-wins". */
  conflicts?: "off" | "report" | "last-writer-wins";
  /** The timestamp field last-writer-wins compares (milliseconds or a date string). */
  conflictField?: string;
  /** Per database, megabytes it may take on disk here (empty: no cap); beyond, the oldest documents are purged here only. */
  keepMb?: number | string;
  /** Per database, hours a document is kept here by its time field (empty: no limit). */
  keepHours?: number | string;
  /** The field with a document's time, for the age and for which is oldest. */
  keepTimeField?: string;
  /** A numeric field: lower values are purged first. */
  keepPriorityField?: string;
}

interface MeshSyncCredentials {
  username?: string;
  password?: string;
}

type Msg = NodeMessageInFlow & { to?: unknown; mode?: unknown; ttl?: unknown; priority?: unknown; battery?: unknown; power?: unknown; database?: unknown; resolve?: unknown; purge?: unknown };

/** A number setting from the editor (strings there), or the default when empty; a bad one is a config error. */
function setting(value: unknown, fallback: number, what: string, min = 0): number {
  if (value === undefined || value === null || value === "") return fallback;
  const number = Number(value);
  if (!Number.isFinite(number) || number < min) throw new Error(`${what}: "${String(value)}" is not a number of at least ${min}`);
  return number;
}

/** Database names: separated by commas or spaces (names cannot hold either). */
function list(value: unknown): string[] {
  return String(value ?? "").split(/[\s,]+/).map((item) => item.trim()).filter(Boolean);
}

/** Peer ids or names: separated by commas or new lines, since a name may hold spaces ("line gateway"). */
function peerList(value: unknown): string[] {
  return String(value ?? "").split(/[,\n]+/).map((item) => item.trim()).filter(Boolean);
}

export = (RED: NodeAPI): void => {
  RED.nodes.registerType<Node<MeshSyncCredentials>, MeshSyncDef, unknown, MeshSyncCredentials>(
    "mesh-sync",
    function (this: Node<MeshSyncCredentials>, def: MeshSyncDef) {
      RED.nodes.createNode(this, def);
      const node = this;
      const status = new ThrottledStatus(node);
      let sync: MeshSync | undefined;
      let closed = false;
      let batteryNote = "";
      let lastError = "";
      const cleanups: Array<() => void> = [];
      const conflictWatchers = new Map<string, ConflictWatcher>();
      const keepers: RetentionKeeper[] = [];

      let config: ReturnType<typeof readConfig>;
      try {
        config = readConfig(def, node.credentials ?? {});
      } catch (err) {
        node.error(err as Error);
        node.status({ fill: "red", shape: "ring", text: shorten((err as Error).message) });
        node.on("input", (_msg: NodeMessageInFlow, _send: unknown, done: (err?: Error) => void) => done(err as Error));
        return;
      }
      const { ready } = useIdentity(RED, node, def.identity);

      const showState = (device: Device): void =>
        status.update(() => {
          if (sync?.isPaused) return { fill: "yellow", shape: "ring", text: RED._("mesh-sync.status.paused", { reason: batteryNote }) };
          if (lastError) return { fill: "red", shape: "dot", text: shorten(lastError) };
          const peers = device.peerTable.size;
          const stored = config.mesh ? device.mesh.storedMessages : 0;
          return { fill: peers > 0 || config.cloud ? "green" : "grey", shape: "dot", text: RED._("mesh-sync.status.state", { peers, stored }) };
        });

      ready.then((device) => {
        if (closed) return;
        for (const name of config.databases) device.databases.open(name); // a database the identity does not keep is a config error, now
        if (config.mesh) {
          device.mesh.configure({ relay: config.relay, fallbackMs: config.fallbackMs, quota: config.quota });
          cleanups.push(forwardMesh(device, node, () => showState(device)));
        }
        if (config.outputChanges) cleanups.push(...config.databases.map((name) => forwardChanges(device, name, node)));
        if (config.conflicts) for (const name of config.databases) conflictWatchers.set(name, watchConflicts(device, name, config.conflicts, node));
        if (config.retention) for (const name of config.databases) keepers.push(keepWithin(device, name, config.retention, node));
        sync = device.meshSync({ databases: config.databases, direction: config.direction, mesh: config.mesh, peers: config.peers, cloud: config.cloud, policy: config.policy });
        sync.on("sync", (report: SyncReport) => {
          lastError = "";
          if (report.docsRead + report.docsWritten + report.failures > 0) node.send([null, { topic: "sync", payload: report }]);
          showState(device);
        });
        sync.on("failed", (err: Error, peer: string, database: string) => {
          lastError = RED._("mesh-sync.status.failed", { peer: peer.slice(0, 8), database, reason: failureReason(RED, err) });
          node.send([null, { topic: "error", payload: { peer, database, code: failureCode(err), message: err.message } }]);
          node.warn(`${peer.slice(0, 8)} ${database}: ${err.message}`);
          showState(device);
        });
        sync.on("state", () => showState(device));
        const onPeers = (): void => showState(device);
        // A peer's write here failed on a full disk: the peer was told, and this device's user is too.
        const onStorageFull = (database: string): void => {
          if (database !== "mesh" && !config.databases.includes(database)) return;
          lastError = RED._("mesh-sync.status.storage-full", { database });
          showState(device);
        };
        device.peerTable.on("found", onPeers);
        device.peerTable.on("lost", onPeers);
        device.on("storage-full", onStorageFull);
        cleanups.push(() => {
          device.peerTable.off("found", onPeers);
          device.peerTable.off("lost", onPeers);
          device.off("storage-full", onStorageFull);
        });
        sync.start();
        showState(device);
      }).catch((err: Error) => {
        node.error(err);
        node.status(errorStatus(err));
      });

      node.on("input", (msg: Msg, send: (msg: NodeMessageInFlow | Array<NodeMessageInFlow | null>) => void, done: (err?: Error) => void) => {
        ready
          .then(async (device) => {
            if (msg.battery !== undefined || msg.power !== undefined) return power(device, msg);
            if (msg.to !== undefined) {
              if (!config.mesh) throw new Error(RED._("mesh-sync.errors.mesh-off"));
              const sent = await device.mesh.send(String(msg.to), msg.payload, {
                topic: typeof msg.topic === "string" ? msg.topic : undefined,
                mode: msg.mode === "directed" || msg.mode === "flood" ? msg.mode : config.mode,
                ttlMs: setting(msg.ttl, config.ttlSeconds, "msg.ttl", 1) * 1000,
                priority: setting(msg.priority, config.priority, "msg.priority"),
              });
              send([null, { ...msg, topic: "sent", payload: sent }]);
              showState(device);
              return;
            }
            if (msg.resolve !== undefined) {
              const { database, id, rev } = (msg.resolve ?? {}) as { database?: unknown; id?: unknown; rev?: unknown };
              const watcher = conflictWatchers.get(String(database));
              if (!watcher) throw new Error(RED._("mesh-sync.errors.no-conflict-watch", { database: String(database) }));
              if (typeof id !== "string" || typeof rev !== "string") throw new Error(RED._("mesh-sync.errors.bad-resolve"));
              send([null, { ...msg, topic: "resolved", payload: await watcher.resolve(id, rev) }]);
              if (config.policy.intervalMs === 0) sync?.syncAll();
              return;
            }
            if (msg.purge !== undefined) {
              const database = String(msg.database);
              if (!config.databases.includes(database)) throw new Error(RED._("mesh-sync.errors.not-synced", { database }));
              const ids = typeof msg.purge === "string" ? [msg.purge] : msg.purge;
              if (!Array.isArray(ids) || ids.length === 0 || !ids.every((id) => typeof id === "string" && id !== "")) throw new Error(RED._("mesh-sync.errors.bad-purge"));
              send([null, { ...msg, topic: "purged", payload: { database, ...(await device.databases.purge(database, ids)) } }]);
              return;
            }
            if (msg.database !== undefined) {
              const stored = await store(device, msg);
              send([null, { ...msg, topic: "stored", payload: stored }]);
              if (config.policy.intervalMs === 0) sync?.syncAll();
              return;
            }
            // Anything else: a round now ("sync now" button).
            sync?.syncAll();
          })
          .then(() => done(), (err: Error) => done(err));
      });

      /** msg.database: msg.payload (an object) becomes a document there, replicated like the rest. */
      async function store(device: Device, msg: Msg): Promise<{ database: string; id: string; rev: string }> {
        const database = String(msg.database);
        if (!config.databases.includes(database)) throw new Error(RED._("mesh-sync.errors.not-synced", { database }));
        if (!isDocumentBody(msg.payload)) throw new Error(RED._("mesh-sync.errors.not-a-document"));
        return { database, ...(await putDocument(device.databases.open(database), msg.payload)) };
      }

      /** msg.battery (percent) under the threshold, or msg.power "low", pauses; otherwise syncing resumes. */
      function power(device: Device, msg: Msg): void {
        const battery = typeof msg.battery === "number" ? msg.battery : undefined;
        const low = lowPower({ battery, power: typeof msg.power === "string" ? msg.power : undefined }, config.minBattery);
        batteryNote = battery !== undefined ? `${battery}%` : String(msg.power ?? "");
        if (low) sync?.pause();
        else sync?.resume();
        showState(device);
      }

      node.on("close", (_removed: boolean, done: () => void) => {
        closed = true;
        for (const cleanup of cleanups.splice(0)) cleanup();
        const watchers = [...conflictWatchers.values(), ...keepers.splice(0)].map((watcher) => watcher.stop());
        conflictWatchers.clear();
        status.stop();
        Promise.all([...watchers, sync?.stop()]).then(() => done(), () => done());
      });
    },
    { credentials: { username: { type: "text" }, password: { type: "password" } } },
  );
};

/** Store-and-forward messages for this device go to output 1; acks, expiries and refusals to output 2. Returns the undo. */
function forwardMesh(device: Device, node: Node, changed: () => void): () => void {
  const stopMessages = device.mesh.onMessage((message: MeshMessage) => {
    node.send([{ topic: message.topic, payload: message.payload, peer: { id: message.from, name: device.peers.nameOf(message.from) }, mesh: { id: message.id, to: message.to, mode: message.mode, priority: message.priority, created: message.created, expires: message.expires } }, null]);
    changed();
  });
  const forward = (topic: string) => (payload: object): void => void node.send([null, { topic, payload }]);
  const events = { acked: forward("acked"), expired: forward("expired"), rejected: forward("rejected") }; // identity-config logs rejections
  for (const [event, listener] of Object.entries(events)) device.mesh.on(event as keyof typeof events, listener);
  return () => {
    stopMessages();
    for (const [event, listener] of Object.entries(events)) device.mesh.off(event as keyof typeof events, listener);
  };
}

/** Every change to `name`, whichever side started the session that brought it (or a flow that wrote it here), to output 2. */
function forwardChanges(device: Device, name: string, node: Node): () => void {
  const feed = device.databases.open(name).changes({ since: "now", live: true, include_docs: true });
  feed.on("change", (change) => node.send([null, { topic: "change", database: name, payload: change.doc ?? { _id: change.id, _deleted: change.deleted } }]));
  feed.on("error", () => undefined); // ends when the identity stops
  return () => feed.cancel();
}

/** Conflicts in `name` to output 2, as `conflict` events, resolved by the policy first when it resolves. */
function watchConflicts(device: Device, name: string, policy: ConflictPolicy, node: Node): ConflictWatcher {
  const watcher = new ConflictWatcher(device.databases.open(name), name, policy);
  watcher.on("conflict", (event) => node.send([null, { topic: "conflict", payload: event }]));
  watcher.on("error", (err) => node.warn(err.message));
  watcher.start();
  return watcher;
}

/** Keeps `name` within the node's retention; what is purged goes to output 2 as a `purged` event. */
function keepWithin(device: Device, name: string, policy: RetentionPolicy, node: Node): RetentionKeeper {
  const keeper = device.databases.retain(name, policy);
  keeper.on("purged", (event: PurgeEvent) => node.send([null, { topic: "purged", payload: event }]));
  keeper.on("error", (err: Error) => node.warn(`${name}: ${err.message}`));
  return keeper;
}

const D = MESH_SYNC_DEFAULTS;

/** Flows saved before these settings existed keep working as they did. */
const MESH_SYNC_MIGRATIONS: ReadonlyArray<Migration<MeshSyncDef>> = [
  { field: "mesh", was: true, why: "the first mesh-sync node always exchanged store-and-forward messages" },
  { field: "relay", was: true, why: "relaying for others came with the mesh and was always on" },
  { field: "outputChanges", was: false, why: "\"send arriving documents\" came later and is off unless chosen" },
  { field: "conflicts", was: "off", why: "0.2.0 added conflict events; a flow saved before got none on output 2" },
  { field: "conflictField", was: "updatedAt", why: "0.2.0 added last-writer-wins, by updatedAt unless set" },
];

function readConfig(saved: MeshSyncDef, credentials: MeshSyncCredentials) {
  const def = migrate(saved, MESH_SYNC_MIGRATIONS);
  const direction: Direction = def.direction === "push" || def.direction === "pull" ? def.direction : "both";
  const cloudUrl = def.cloudUrl?.trim();
  if (cloudUrl && !/^https?:\/\//.test(cloudUrl)) throw new Error(`cloud URL "${cloudUrl}" must start with http:// or https://`);
  return {
    databases: list(def.databases),
    direction,
    mesh: def.mesh !== false,
    relay: def.relay !== false,
    peers: peerList(def.peers),
    mode: (def.mode === "directed" ? "directed" : "flood") as MeshMode,
    ttlSeconds: setting(def.ttl, D.ttl, "time to live", 1),
    priority: setting(def.priority, D.priority, "priority"),
    fallbackMs: setting(def.fallback, D.fallback, "fallback") * 1000,
    quota: { docs: setting(def.quotaDocs, D.quotaDocs, "quota (messages)", 1), bytes: setting(def.quotaMb, D.quotaMb, "quota (MB)", 1) * 1024 * 1024 },
    minBattery: setting(def.minBattery, D.minBattery, "minimum battery"),
    policy: { intervalMs: setting(def.interval, D.interval, "interval") * 1000, maxDocs: setting(def.maxDocs, D.maxDocs, "documents per session", 1), maxBytes: setting(def.maxKb, D.maxKb, "kilobytes per session", 1) * 1024 },
    cloud: cloudUrl ? { url: cloudUrl, meshDatabase: def.cloudDatabase?.trim() || D.cloudDatabase, auth: credentials.username ? { username: credentials.username, password: credentials.password ?? "" } : undefined } : undefined,
    outputChanges: def.outputChanges === true,
    conflicts: conflictPolicy(def.conflicts, def.conflictField),
    retention: retentionPolicy(def),
  };
}

/** The database cap and age; undefined when neither is set. */
function retentionPolicy(def: MeshSyncDef): RetentionPolicy | undefined {
  const mb = def.keepMb === undefined || def.keepMb === "" ? undefined : setting(def.keepMb, 0, "keep at most (MB)");
  const hours = def.keepHours === undefined || def.keepHours === "" ? undefined : setting(def.keepHours, 0, "keep for (hours)");
  if (mb === undefined && hours === undefined) return undefined;
  const field = (value: string | undefined): string | undefined => value?.trim() || undefined;
  return validateRetention({
    maxBytes: mb === undefined ? undefined : Math.round(mb * 1024 * 1024),
    maxAgeMs: hours === undefined ? undefined : hours * 3_600_000,
    timeField: field(def.keepTimeField),
    priorityField: field(def.keepPriorityField),
  });
}

function conflictPolicy(conflicts: MeshSyncDef["conflicts"], field: string | undefined): ConflictPolicy | undefined {
  if (conflicts === "report") return { kind: "report" };
  if (conflicts !== "last-writer-wins") return undefined;
  const name = field?.trim() || "updatedAt";
  if (name.startsWith("_")) throw new Error(`conflict field "${name}": a field of the document's own, not one of CouchDB's (_id, _rev …)`);
  return { kind: "last-writer-wins", field: name };
}
