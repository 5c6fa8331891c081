import fs from "node:fs";
import path from "node:path";
import type { Node, NodeAPI, NodeDef } from "node-red";
import { closeIdleDatabases, DEFAULT_PROBE_INTERVAL_MS, DEFAULT_RULES, Device, DiscoveryOptions, Identity, IdentityError, isAddress, isDeviceId, Rule, type RotationStatement, type TorStatus, validateKnownPeers, verifyRotation } from "../../lib";
import type { IdentityConfigNode } from "../shared/identity-node";
import { runningIdentities } from "../shared/running-identities";
import { registerAdminApi } from "./admin-api";
import { migrate, type Migration } from "../shared/migrations";

interface IdentityConfigDef extends NodeDef {
  host?: string;
  port?: number | string;
  peers?: unknown;
  /** LAN discovery (see IDENTITY_MIGRATIONS for flows without it). */
  mdns?: boolean;
  mdnsInterface?: string;
  /** mDNS announces beacons only known and paired peers recognise, instead of the device id and name. */
  privateDiscovery?: boolean;
  ble?: boolean;
  /** Tor: "off", "on" (also reachable as an onion service), "only". */
  tor?: string;
  /** "launch" a tor of the device's own, or "attach" to a running one through its control port. */
  torMode?: string;
  torPath?: string;
  /** host:port of a running tor's control port (attach). */
  torControl?: string;
  /** Seconds between probes of known peers' addresses; 0 turns probing off. */
  probeInterval?: number | string;
  /** This device's own groups of public keys; members as ids (an array, or one per line). */
  groups?: Array<{ name?: unknown; members?: unknown }>;
  /** Keys this device revokes fleet-wide: device ids, one per line. */
  revoked?: string;
  rules?: unknown;
  /** Databases this device keeps and serves to peers the rules allow, comma separated. */
  databases?: string;
  /** Trust the other identities in this Node-RED with the same simulated network name (the examples); empty: off. */
  localNetwork?: string;
}

/** Flows saved before these settings existed keep working as they did. */
const IDENTITY_MIGRATIONS: ReadonlyArray<Migration<IdentityConfigDef>> = [
  { field: "mdns", was: false, why: "LAN discovery came later; a flow from before never announced itself on the LAN" },
  { field: "ble", was: false, why: "Bluetooth LE came later, and is off unless chosen" },
  { field: "tor", was: "off", why: "Tor came in 0.2.0" },
  { field: "privateDiscovery", was: false, why: "private discovery came later; a flow from before announced its device id, and peers on older releases find only such announcements" },
  { field: "rules", was: DEFAULT_RULES, why: "before the ACL, known peers could do anything and unknown keys nothing" },
];

interface IdentityCredentials {
  privateKey: unknown;
  certificate: unknown;
  /** The control port's password of a tor to attach to (HashedControlPassword); empty for cookie authentication. */
  torPassword?: unknown;
  /** The statement (JSON) that moved this identity from its previous key ("Rotate key"). */
  rotation?: unknown;
}

type Creds = { credentials?: Partial<IdentityCredentials> };

/** Reads the identity from credentials; a node deployed without one (an imported flow) gets a new one. */
function loadIdentity(RED: NodeAPI, node: IdentityConfigNode & Creds, name: string | undefined): Identity {
  const { privateKey, certificate } = node.credentials ?? {};
  if (typeof privateKey === "string" && privateKey && typeof certificate === "string" && certificate) return Identity.fromPem(privateKey, certificate);
  if (privateKey || certificate) throw new IdentityError(RED._("identity-config.errors.half-identity"));
  const identity = Identity.generate({ name });
  // Kept in the credential store; Node-RED writes it to disk with the next deploy.
  RED.nodes.addCredentials(node.id, { privateKey: identity.privateKeyPem, certificate: identity.certificatePem });
  node.warn(RED._("identity-config.warnings.generated", { id: identity.deviceId }));
  return identity;
}

/**
 * The statement that moved this identity to its key, when its credentials hold one for exactly this key;
 * one for another key (a key made or imported since) is left out with a warning.
 */
function loadRotation(RED: NodeAPI, node: IdentityConfigNode & Creds, identity: Identity): RotationStatement | undefined {
  const text = node.credentials?.rotation;
  if (typeof text !== "string" || text === "") return undefined;
  try {
    const statement = verifyRotation(JSON.parse(text));
    if (statement.to === identity.deviceId) return statement;
  } catch {
    // reported below, as for one that names another key
  }
  node.warn(RED._("identity-config.warnings.stale-rotation"));
  return undefined;
}

/**
 * The storage follows a rotated identity: the directory of its old id becomes its new id's, once no
 * database of the process holds it open (a full deploy's old device released them a moment ago).
 */
async function moveStorage(from: string, to: string): Promise<void> {
  if (fs.existsSync(to) || !fs.existsSync(from)) return;
  await closeIdleDatabases();
  fs.renameSync(from, to);
}

function parseProbeInterval(value: unknown): number {
  if (value === undefined || value === "") return DEFAULT_PROBE_INTERVAL_MS;
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds < 0) throw new Error(`probe interval ${String(value)} is not a number of seconds`);
  return seconds * 1000;
}

function discoveryOptions(def: IdentityConfigDef, credentials: Partial<IdentityCredentials> | undefined): DiscoveryOptions {
  return {
    mdns: def.mdns === true ? { interface: def.mdnsInterface?.trim() || undefined } : false,
    privateDiscovery: def.privateDiscovery === true,
    staticProbeIntervalMs: parseProbeInterval(def.probeInterval),
    ble: def.ble === true ? {} : false,
    tor: torOptions(def, credentials),
  };
}

function torOptions(def: IdentityConfigDef, credentials: Partial<IdentityCredentials> | undefined): DiscoveryOptions["tor"] {
  const mode = def.tor || "off";
  if (mode === "off") return false;
  if (mode !== "on" && mode !== "only") throw new Error(`Tor setting "${mode}" is not off, on or only`);
  const only = mode === "only";
  if (def.torMode === "attach") {
    const controlAddress = def.torControl?.trim() ?? "";
    if (!isAddress(controlAddress)) throw new Error(`Tor control port "${controlAddress}" is not host:port`);
    const password = typeof credentials?.torPassword === "string" && credentials.torPassword ? credentials.torPassword : undefined;
    return { only, attach: { controlAddress, password } };
  }
  return { only, launch: { binary: def.torPath?.trim() || undefined } };
}

/** Logs each distinct transport warning once, so a flapping network does not flood the log. */
function warnOnce(node: Node): (err: Error, transport: string) => void {
  const seen = new Set<string>();
  return (err, transport) => {
    const text = `${transport}: ${err.message}`;
    if (seen.has(text)) return;
    seen.add(text);
    // Storage that cannot be used is an error (its databases and mesh are off), not a passing warning.
    if (transport === "storage") node.error(text);
    else node.warn(text);
  };
}

/** Logs when Tor is ready and when its onion service is published (the status badges show the steps between). */
function logTorProgress(RED: NodeAPI, node: Node): (status: TorStatus) => void {
  let logged = "";
  return (status) => {
    const milestone = status.state === "ready" ? (status.published ? "published" : "ready") : "";
    if (!milestone || milestone === logged) return;
    logged = milestone;
    node.log(RED._(`identity-config.log.tor-${milestone}`, { onion: status.onion ?? "" }));
  };
}

const STORAGE_WARNING_INTERVAL_MS = 60_000;

/** A full disk refuses every write until space is freed: one warning a minute per database says so without flooding. */
function warnStorageFull(RED: NodeAPI, node: Node): (database: string) => void {
  const lastWarned = new Map<string, number>();
  return (database) => {
    const now = Date.now();
    if (now - (lastWarned.get(database) ?? -Infinity) < STORAGE_WARNING_INTERVAL_MS) return;
    lastWarned.set(database, now);
    node.warn(RED._("identity-config.warnings.storage-full", { database }));
  };
}

function parseGroups(groups: IdentityConfigDef["groups"]): Array<{ name: string; members: string[] }> {
  return (Array.isArray(groups) ? groups : []).map((group) => ({
    name: String(group?.name ?? "").trim(),
    members: (Array.isArray(group?.members) ? group.members.map(String) : String(group?.members ?? "").split(/[\s,]+/)).map((id) => id.trim().toLowerCase()).filter(Boolean),
  }));
}

function parseRevoked(RED: NodeAPI, value: unknown): string[] {
  const ids = String(value ?? "").split(/[\s,]+/).map((id) => id.trim().toLowerCase()).filter(Boolean);
  for (const id of ids) if (!isDeviceId(id)) throw new Error(RED._("identity-config.errors.revoked-id", { id }));
  return ids;
}

function parseDatabases(value: unknown): string[] {
  return String(value ?? "").split(/[\s,]+/).map((name) => name.trim()).filter(Boolean);
}

/** Each device keeps its databases under the Node-RED user directory; without one (tests), in memory. */
function storageDirOf(RED: NodeAPI, deviceId: string): string | undefined {
  const userDir = (RED.settings as { userDir?: string }).userDir;
  return userDir ? path.join(userDir, "peer-mesh", deviceId) : undefined;
}

function parsePort(value: unknown): number {
  const port = value === undefined || value === "" ? 0 : Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`port ${String(value)} is not between 0 and 65535`);
  return port;
}

export = (RED: NodeAPI): void => {
  RED.nodes.registerType<Node<IdentityCredentials>, IdentityConfigDef, unknown, IdentityCredentials>(
    "identity-config",
    function (this: Node<IdentityCredentials>, saved: IdentityConfigDef) {
      RED.nodes.createNode(this, saved);
      const def = migrate(saved, IDENTITY_MIGRATIONS);
      const node = this as unknown as IdentityConfigNode & Creds;
      let closed = false;
      let leaveRunning = (): void => undefined;
      try {
        const identity = loadIdentity(RED, node, def.name);
        const rotatedFrom = loadRotation(RED, node, identity);
        const { peers, problems } = validateKnownPeers(def.peers);
        for (const problem of problems) node.warn(problem);
        const storageDir = storageDirOf(RED, identity.deviceId);
        const databases = parseDatabases(def.databases);
        if (databases.length > 0 && !storageDir) node.warn(RED._("identity-config.warnings.no-storage"));
        node.device = new Device({ identity, name: def.name || undefined, host: def.host || "127.0.0.1", port: parsePort(def.port), peers,
          discovery: discoveryOptions(def, node.credentials),
          acl: { rules: def.rules as Rule[], groups: parseGroups(def.groups), revoked: parseRevoked(RED, def.revoked) },
          storageDir,
          databases: storageDir ? databases : [],
          rotatedFrom,
        });
        node.device.on("refused", ({ peerId, reason }) => node.debug(`refused ${peerId ?? "a connection"}: ${reason}`));
        node.device.on("warning", warnOnce(node));
        node.device.on("rejected", ({ id, reason }) => node.warn(RED._("identity-config.warnings.group-rejected", { id, reason })));
        node.device.on("storage-full", warnStorageFull(RED, node));
        node.device.on("tor", logTorProgress(RED, node));
        node.device.on("rotated", ({ from, to, name }) => node.log(RED._("identity-config.log.rotated", { name: name ?? from.slice(0, 8), from: from.slice(0, 8), to: to.slice(0, 8) })));
        const device = node.device;
        const oldStorage = rotatedFrom && storageDirOf(RED, rotatedFrom.from);
        node.ready = (storageDir && oldStorage ? moveStorage(oldStorage, storageDir) : Promise.resolve()).then(() => device.start());
        node.ready.then(
          (port) => {
            node.log(RED._("identity-config.log.listening", { id: identity.deviceId, host: def.host || "127.0.0.1", port }));
            if (!closed) leaveRunning = runningIdentities.add({ nodeId: node.id, name: def.name || undefined, device, host: def.host || "127.0.0.1", port, network: def.localNetwork?.trim() || undefined });
          },
          (err: Error) => node.error(RED._("identity-config.errors.listen", { message: err.message })),
        );
      } catch (err) {
        node.error((err as Error).message);
        node.ready = Promise.reject(err);
      }
      node.ready.catch(() => undefined); // peer nodes report it in their status
      node.on("close", (_removed: boolean, done: () => void) => {
        closed = true;
        leaveRunning();
        const stopping = node.device ? node.device.stop() : Promise.resolve();
        stopping.then(done, done);
      });
    },
    { credentials: { privateKey: { type: "password" }, certificate: { type: "text" }, torPassword: { type: "password" }, rotation: { type: "text" } } },
  );

  registerAdminApi(RED);
};
