import { EventEmitter } from "node:events";
import type { Readable } from "node:stream";
import { Acl } from "../acl/acl";
import { REVOKED_GROUP } from "../acl/signed-group";
import { PeerRef, PendingPairing, PendingPairings } from "../acl/pending-pairings";
import { KnownPeer, PeerDirectory, validateKnownPeers } from "../discovery/peer-directory";
import { PeerTable } from "../discovery/peer-table";
import type { DialEntry } from "../discovery/transport";
import { isDeviceId, type Identity, type RotationStatement, verifyRotation } from "../identity";
import { Mesh } from "../mesh/mesh";
import { MeshSync, MeshSyncOptions } from "../mesh/sync";
import { WireError } from "../protocol/errors";
import { type Ack, type Authorizer, ROTATION_PATH, type Verb } from "../protocol/wire";
import type { Database } from "../storage/database";
import type { StorageError } from "../storage/storage-error";
import type { TorStatus } from "../tor/tor-transport";
import { Answer, ClientPool, PeerEndpoint, RequestOptions, SendOptions, StreamOptions } from "../wire/client-pool";
import { WireServer } from "../wire/server";
import { Traffic } from "./traffic";
import { KeyChanges, type KeyChange } from "./key-changes";
import { KeyBook } from "./key-book";
import { OnionClients } from "./onion-clients";
import type { BeaconPeer } from "../discovery/beacons";
import { DatabaseHost, type DeviceDatabases } from "./database-host";
import { Dialer } from "./dialer";
import { DeviceGroups } from "./groups";
import { Outbox } from "./outbox";
import { type DevicePairing, PairingDesk } from "./pairing-desk";
import { SystemStorage } from "./system-storage";
import { Inbox, type MessageListener, type ReceivedMessage, type ReceivedStream, type StreamListener } from "./inbox";
import type { DeviceEvents } from "./events";
import { checkDeviceOptions, type DeviceOptions, type DiscoveryOptions, type TorOptions } from "./options";
import { DeviceTransports } from "./transports";
import { DEFAULT_MEMORY_TRIM_INTERVAL_MS, holdMemoryTrim } from "./memory-trim";
import { Authorization } from "./authorization";

export type { PeerRef, PendingPairing, MessageListener, ReceivedMessage, ReceivedStream, StreamListener, DeviceOptions, DiscoveryOptions, TorOptions, DeviceEvents };


/** A key answering at a peer's address is asked for a rotation statement at most this often. */
const ROTATION_ASK_MS = 60_000;

/**
 * One device on the mesh: its identity, its listener, its outgoing connections and the receivers that
 * flows registered. This is what a Node-RED identity-config node holds; it has no Node-RED dependency.
 */
export class Device extends EventEmitter<DeviceEvents> {
  readonly identity: Identity;
  readonly peers: PeerDirectory;
  /** The peers in range right now, as the transports report them. */
  readonly peerTable: PeerTable;
  private readonly transports: DeviceTransports;
  private readonly syncTimes = new Map<string, number>();
  /** Who may do what; consulted for every request in and out unless an authorize function replaces it. */
  readonly acl: Acl;
  private readonly authorization: Authorization;
  /** Its own records (groups, pairings, the mesh store) and the databases it keeps, each leased per directory (open-databases.ts). */
  private readonly system: SystemStorage;
  private readonly databaseHost: DatabaseHost;
  /** The databases it keeps (options.databases): open one, replicate it with a peer, or reach a peer's. */
  readonly databases: DeviceDatabases;
  private readonly pairings: PendingPairings;
  private readonly dialer: Dialer;
  private readonly desk: PairingDesk;
  /** Pairing with another device: this one's code, asking, confirming, refusing, and who is paired. */
  readonly pairing: DevicePairing;
  private readonly server: WireServer;
  /** Messages, streams, refusals and sync sessions counted since start (metrics, diagnostics). */
  readonly traffic = new Traffic();
  private readonly keyWarnings = new KeyChanges();
  /** Known and paired peers' keys, as handshakes proved them: private discovery's beacon secrets. */
  private readonly keyBook = new KeyBook((id) => this.isPeer(id) || this.inOwnGroup(id));
  /** Tor client authorisation: who may reach this device's onion service, and the keys for peers' services. */
  private readonly onionClients: OnionClients;
  private readonly pool: ClientPool;
  private readonly outbox: Outbox;
  private readonly groups: DeviceGroups;
  private readonly inbox: Inbox;
  private started?: Promise<number>;
  private stopping?: Promise<void>;
  private releaseMemoryTrim: () => void = () => undefined;

  constructor(private readonly options: DeviceOptions) {
    super();
    this.identity = options.identity;
    checkDeviceOptions(options);
    if (options.rotatedFrom && verifyRotation(options.rotatedFrom).to !== options.identity.deviceId) throw new WireError("BAD_REQUEST", `the key rotation given names ${options.rotatedFrom.to.slice(0, 8)} as the new key, not this device's ${options.identity.deviceId.slice(0, 8)}`);
    this.peers = new PeerDirectory(options.peers);
    this.pairings = new PendingPairings(options.identity.deviceId, (id) => this.peers.nameOf(id));
    this.pairings.on("pairing", (pending) => this.emit("pairing", pending));
    this.acl = new Acl({ selfId: options.identity.deviceId, rules: options.acl?.rules, isKnown: (id) => this.peers.has(id) });
    this.acl.on("rejected", (info) => this.emit("rejected", info));
    this.authorization = new Authorization(this.acl, options.authorize);
    const { authorize, authorizeTopic } = this.authorization;
    this.peerTable = new PeerTable({
      maxPeers: options.discovery?.maxPeers,
      isTrusted: (id) => this.peers.has(id),
      nameOf: (id) => this.peers.nameOf(id),
    });
    this.server = new WireServer({
      identity: options.identity,
      host: options.host,
      port: options.port,
      limits: options.limits,
      authorize,
      authorizeTopic,
      permits: (peerId, verb, prefix) => this.authorization.permits(peerId, verb, prefix),
      receiver: {
        acceptMessage: (message) => this.inbox.acceptMessage(message),
        acceptStream: (stream) => this.inbox.acceptStream(stream),
        acceptPairing: (request) => this.pairings.acceptIncoming(request),
        serveDatabase: (peerId, target, request) => this.databaseHost.serve(peerId, target, request),
      },
      onPeerKey: (peerId, spki) => this.keyBook.learn(peerId, spki),
      // Private discovery would be for nothing if any client could fetch the certificate, and so the id.
      privateListener: !!options.discovery?.privateDiscovery,
      rotation: options.rotatedFrom,
    });
    this.server.on("refused", (info) => {
      this.traffic.refused(info.kind);
      this.emit("refused", info);
    });
    this.server.on("received", ({ peerId, kind, bytes }) => this.traffic.received(peerId, kind, bytes));
    // A revoked key loses its open streams now, not when they end.
    this.acl.on("changed", () => {
      void this.server.reauthorize();
      void this.outbox.recheck();
    });
    this.pool = new ClientPool(options.identity, { idleMs: options.idleConnectionMs, onIdentityMismatch: (peer, answeredBy) => this.keyChanged(peer.id, peer.address, answeredBy), onPeerKey: (peerId, spki) => this.keyBook.learn(peerId, spki) });
    this.outbox = new Outbox(this.pool, authorize, authorizeTopic, (id) => this.peers.label(id), this.traffic);
    this.system = new SystemStorage(options.storageDir, (err) => this.emit("warning", err, "storage"));
    this.groups = new DeviceGroups({ identity: options.identity, acl: this.acl, knows: (owner) => this.peers.has(owner) || this.desk.isPaired(owner), save: (doc) => this.system.saveGroup(doc) });
    this.transports = new DeviceTransports({
      warning: (err, transport) => this.emit("warning", err, transport),
      connection: (socket) => this.server.accept(socket),
      tor: (status) => {
        this.emit("tor", status);
        if (status.onion) void this.meshStore?.setOnion(status.onion).catch(() => undefined);
      },
      keyChanged: ({ expectedId, address, answeredBy }) => this.keyChanged(expectedId, address, answeredBy),
    });
    this.dialer = new Dialer({
      peers: this.peers,
      peerTable: this.peerTable,
      transports: () => this.transports.all,
      hasTor: !!options.discovery?.tor,
      torOnly: this.torOnly,
      mesh: () => this.meshStore,
      predecessorOf: (id) => this.acl.predecessorOf(id),
    });
    this.desk = new PairingDesk({
      selfId: this.id,
      name: options.name,
      host: options.host ?? "127.0.0.1",
      port: () => this.port,
      torOnly: this.torOnly,
      tor: () => this.transports.torTransport,
      pairings: this.pairings,
      dialer: this.dialer,
      pool: this.pool,
      store: () => this.system.paired,
      peerRef: (id) => this.peerRef(id),
      joinGroup: (group, peerId) => this.groups.add(group, peerId),
      probe: (entry) => this.transports.probe(entry),
      onionPairingKey: () => this.onionClients.pairingKey(),
    });
    this.pairing = this.desk;
    this.onionClients = new OnionClients({
      self: options.identity,
      admitted: () => this.onionAdmitted(),
      peer: (id) => ({ id, key: this.keyBook.keyOf(id) }),
      restricted: !!options.discovery?.privateDiscovery,
    });
    this.inbox = new Inbox(options.identity.shortId, (id) => this.peerRef(id));
    this.databaseHost = new DatabaseHost({
      selfId: this.id,
      storageDir: options.storageDir,
      names: options.databases ?? [],
      authorize,
      label: (id) => this.peers.label(id),
      resolvePeer: (reference) => this.resolvePeer(reference),
      endpoint: (peerId) => this.endpoint(peerId),
      pool: this.pool,
      mesh: () => this.meshStore,
      storageError: () => this.storageError,
      maxRequestBytes: () => this.server.limits.maxDatabaseRequestBytes,
      onStorageFull: (database, err) => this.emit("storage-full", database, err),
      onWarning: (err) => this.emit("warning", err, "storage"),
      onPurged: (database, reason, count) => this.traffic.purged(database, reason, count),
    });
    this.databases = this.databaseHost;
  }

  get id(): string {
    return this.identity.deviceId;
  }

  /** Starts listening and discovering once; later calls return the same port. */
  start(): Promise<number> {
    this.started ??= this.openStorage().then(() => this.server.listen()).then(async ({ port }) => {
      const { identity, options } = this;
      const context = { identity, host: options.host ?? "127.0.0.1", port, name: options.name, storageDir: options.storageDir, discovery: options.discovery ?? {}, beaconPeers: () => this.beaconPeers(), onionClients: this.onionClients };
      await this.transports.start(context, this.peerTable, this.knownAddresses());
      this.releaseMemoryTrim = holdMemoryTrim(options.memoryTrimIntervalMs ?? DEFAULT_MEMORY_TRIM_INTERVAL_MS);
      return port;
    });
    return this.started;
  }

  /**
   * Loads stored groups and signs this device's configured ones, before the first request is served.
   * Storage that cannot be used (locked by another process, damaged) does not stop the device: it runs
   * without groups on disk, databases and the mesh, and says why (storageError, a "warning").
   */
  private async openStorage(): Promise<void> {
    await this.system.open(this.acl);
    if (this.system.database) await this.keyBook.load(this.system.database);
    this.desk.restore();
    for (const group of this.options.acl?.groups ?? []) await this.setGroup(group.name, group.members);
    // An empty list is signed too once one was: taking every key off it must reach the fleet.
    if (this.options.acl?.revoked?.length || this.acl.group(this.identity.deviceId, REVOKED_GROUP)) await this.setRevoked(this.options.acl?.revoked ?? []);
    if (!this.system.database) return;
    await this.databaseHost.openAll();
    await this.system.startMesh({ ...this.options.mesh, identity: this.identity, name: this.options.name, groupMembers: (to) => this.groups.membersOf(to), checkGroup: (doc) => this.groups.check(doc), resolvePeer: (reference) => {
      const id = this.dialer.tryResolve(this.followed(reference));
      return id && this.acl.successorOf(id);
    }, successorOf: (id) => this.acl.successorOf(id), rotatedFrom: this.options.rotatedFrom, isRevoked: (id) => this.acl.isRevoked(id), ...(this.options.discovery?.privateDiscovery ? { mayReadNeighbours: (id: string) => this.acl.authorize(id, "relay", "mesh") } : {}) }, (mesh) => {
      mesh.on("rejected", (info) => this.emit("rejected", info));
      mesh.on("rotated", (statement) => void this.follow(statement).catch((err: Error) => this.emit("warning", err, "mesh")));
      // A known peer's device document that names an onion address: Tor probes it from now on.
      mesh.on("onion", ({ id, onion }) => {
        if (this.peers.has(id) || this.desk.isPaired(id)) this.transports.probe({ address: onion, expectedId: id, name: this.peers.nameOf(id) });
      });
    });
  }

  /** Why this device's storage could not be used at start, when it could not (it runs without it). */
  get storageError(): StorageError | undefined {
    return this.system.error;
  }

  private get meshStore(): Mesh | undefined {
    return this.system.mesh;
  }

  /** Store-and-forward messages; present when the device has storage. */
  get mesh(): Mesh {
    if (this.storageError) throw this.storageError;
    if (!this.meshStore) throw new WireError("CLOSED", this.options.storageDir ? "the device has not started yet" : "the mesh needs a storage directory (storageDir)");
    return this.meshStore;
  }

  /** Whether this device's ACL lets `peerId` do `verb` on `resource` (what the wire would answer it). */
  allows(peerId: string, verb: Verb, resource: string): Promise<boolean> {
    return Promise.resolve(this.authorization.authorize(peerId, verb, resource));
  }

  /** The database holding this device's groups, pairings and mesh documents, when it has storage. */
  get systemDatabase(): Database | undefined {
    return this.system.database;
  }

  /** Gives this device's group `name` exactly these members, signed anew (and stored) if they changed. */
  setGroup(name: string, members: string[]): Promise<void> {
    return this.groups.set(name, members);
  }

  /**
   * Revokes exactly these keys, fleet-wide: this device signs its revocation list (a new version when it
   * changed) and the mesh carries it to every device; each one whose rules name this device's groups
   * refuses those keys everything from then on (connections, messages, mesh documents), and never seals a
   * mesh message to them. An older version cannot undo it: the highest signed version is kept.
   */
  setRevoked(ids: string[]): Promise<void> {
    for (const id of ids) if (!isDeviceId(id)) return Promise.reject(new WireError("BAD_REQUEST", `"${id}" is not a device id`));
    // Whoever held a revoked key could have signed its rotation: the keys it moved to (as known here) go too.
    return this.groups.set(REVOKED_GROUP, [...new Set(ids.flatMap((id) => [id, ...this.acl.successorsOf(id)]))]);
  }

  /** A function that decides instead of the ACL (a flow's); undefined gives the decisions back to the ACL. */
  set authorize(authorize: Authorizer | undefined) {
    this.authorization.replace(authorize);
  }

  /** The public key (DER SPKI) a handshake proved for a known or paired peer, kept with the storage. */
  keyOf(peerId: string): Buffer | undefined {
    return this.keyBook.keyOf(peerId);
  }

  /** A configured or paired peer, or the key one of them moved to. */
  private isPeer(id: string): boolean {
    const old = this.acl.predecessorOf(id);
    return this.peers.has(id) || this.desk.isPaired(id) || (old !== undefined && (this.peers.has(old) || this.desk.isPaired(old)));
  }

  /** Who private discovery announces beacons for and recognises: configured and paired peers, with the keys handshakes proved. */
  private beaconPeers(): BeaconPeer[] {
    const ids = new Set([...this.peers.list().map((peer) => peer.id), ...(this.system.paired?.list() ?? []).map((peer) => peer.id)].map((id) => this.acl.successorOf(id)));
    return [...ids].map((id) => ({ id, key: this.keyBook.keyOf(id) }));
  }

  /**
   * Who may reach this device's onion service when it admits only its peers: configured and paired
   * peers first, then the members of its own groups, never a revoked key.
   */
  private onionAdmitted(): BeaconPeer[] {
    const own = this.acl.listGroups().filter((group) => group.owner === this.id && group.name !== REVOKED_GROUP);
    const ids = new Set([...this.beaconPeers().map((peer) => peer.id), ...own.flatMap((group) => group.members)]);
    return [...ids].filter((id) => !this.acl.isRevoked(id)).map((id) => ({ id, key: this.keyBook.keyOf(id) }));
  }

  /** A member of one of this device's own groups (whose keys Tor client authorisation needs). */
  private inOwnGroup(id: string): boolean {
    return this.acl.listGroups().some((group) => group.owner === this.id && group.name !== REVOKED_GROUP && group.members.includes(id));
  }

  /** Where configured peers listen, and peers paired before this start (probed at the addresses their codes gave). */
  private knownAddresses(): DialEntry[] {
    const configured = this.peers.list().flatMap((peer) => (peer.address ? [{ address: peer.address, expectedId: peer.id, name: peer.name }] : []));
    const paired = (this.system.paired?.list() ?? []).filter((peer) => !this.peers.get(peer.id)?.address);
    return [...configured, ...paired.flatMap((peer) => peer.addresses.map((address) => ({ address, expectedId: peer.id, name: peer.name })))];
  }

  /** Tor's bootstrap progress and this device's onion address, when Tor is on. */
  get torStatus(): TorStatus | undefined {
    return this.transports.torTransport?.status;
  }

  private get torOnly(): boolean {
    return !!this.options.discovery?.tor && this.options.discovery.tor.only === true;
  }

  /** Transports that were asked for but cannot run here (BLE with no adapter), with the reason. */
  get unavailableTransports(): Array<{ name: string; reason: string }> {
    return this.transports.unavailable;
  }

  /** Known peers at whose address another key answered, until their own answers there again ("key changed"). */
  get keyChanges(): KeyChange[] {
    return this.keyWarnings.list();
  }

  private keyChanged(peerId: string, address: string, answeredBy: string | undefined): void {
    // The key a verified rotation names is the peer itself, not a stranger on its address.
    if (answeredBy && answeredBy === this.acl.successorOf(peerId)) answeredBy = undefined;
    const change = answeredBy ? this.keyWarnings.changed(peerId, address, answeredBy, this.peers.nameOf(peerId)) : this.keyWarnings.restored(peerId, address);
    if (change) this.emit("key-changed", change, !answeredBy);
    if (answeredBy) void this.askForRotation(peerId, address, answeredBy);
  }

  /** When each (old key, answering key) pair was last asked for a rotation statement. */
  private readonly rotationAsked = new Map<string, number>();

  /**
   * Another key at a peer's address may be the peer itself, moved to a new key: that key is asked for its
   * rotation statement (public, and proved by both keys), at most once a minute. One that moves exactly
   * this peer to exactly that key is followed, and the warning ends; anything else leaves the warning.
   */
  private async askForRotation(peerId: string, address: string, answeredBy: string): Promise<void> {
    const pair = `${peerId}>${answeredBy}`;
    const now = Date.now();
    if ((this.rotationAsked.get(pair) ?? 0) > now - ROTATION_ASK_MS) return;
    if (this.rotationAsked.size >= 1_000) this.rotationAsked.clear();
    this.rotationAsked.set(pair, now);
    try {
      const response = await this.pool.request({ id: answeredBy, address }, { method: "GET", path: ROTATION_PATH, timeoutMs: 10_000 });
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of response.body) {
        size += (chunk as Buffer).length;
        if (size > 16 * 1024) throw new Error("a rotation statement is a few hundred bytes");
        chunks.push(chunk as Buffer);
      }
      if (response.status !== 200) return;
      const statement = verifyRotation(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      if (statement.from !== peerId || statement.to !== answeredBy) return;
      await this.follow(statement);
      this.keyChanged(peerId, address, answeredBy);
    } catch {
      // No statement, or not a valid one: the warning stands.
    }
  }

  /** Open connections: peers connected to this device's listener, and this device's own to peers. */
  get connections(): { in: number; out: number } {
    return { in: this.server.connectionCount, out: this.pool.connectionCount };
  }

  /** When each peer (or the cloud) last finished a sync session with this device. */
  get lastSyncs(): ReadonlyMap<string, number> {
    return this.syncTimes;
  }

  /** Mesh sync on this device: its sessions are what lastSyncs and the "synced" event report. */
  meshSync(options: MeshSyncOptions): MeshSync {
    const sync = new MeshSync(this, options);
    sync.on("sync", (report) => {
      const at = Date.now();
      this.traffic.synced(report, at);
      this.syncTimes.set(report.peer, at);
      this.emit("synced", report.peer, at);
    });
    return sync;
  }

  /**
   * Trusts another device from now on, as if it had been configured (other identities in the same
   * runtime, say); with an address, it is probed at once. Replaces a known peer with the same id.
   */
  addKnownPeer(peer: KnownPeer): void {
    const { peers, problems } = validateKnownPeers([peer]);
    if (problems.length > 0) throw new WireError("BAD_REQUEST", problems.join("; "));
    this.peers.add(peers[0]);
    this.acl.knownPeersChanged();
    const address = peers[0].address;
    if (address) this.transports.probe({ address, expectedId: peers[0].id, name: peers[0].name });
  }

  get port(): number | undefined {
    return this.server.listening ? this.server.address().port : undefined;
  }

  /** Stops once; later calls wait for the same stop. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    this.databaseHost.refuseNewWork();
    this.pool.close();
    // A stop that overtakes a start must wait for the listener to exist, or it would outlive the device.
    await this.started?.catch(() => undefined);
    this.releaseMemoryTrim();
    // Goodbyes go out while the listener still answers.
    await this.transports.stop();
    await this.server.close();
    // LevelDB must not be closed under a write still running (a native crash, not an error).
    await this.databaseHost.drainAndRelease();
    await this.keyBook.flushed();
    // Released, not closed: a device started again on this storage (a Node-RED redeploy) takes them over open.
    await this.system.close();
  }

  send(peer: string, topic: string, payload: unknown, options?: SendOptions): Promise<Ack> {
    return this.outbox.send(() => this.endpoint(peer), topic, payload, options);
  }

  /** Sends a message and resolves with the receiving flow's reply (see ReceivedMessage.reply). */
  request(peer: string, topic: string, payload: unknown, options?: RequestOptions): Promise<Answer> {
    return this.outbox.request(() => this.endpoint(peer), topic, payload, options);
  }

  sendStream(peer: string, topic: string, body: Readable, options?: StreamOptions): Promise<Ack> {
    return this.outbox.sendStream(() => this.endpoint(peer), topic, body, options);
  }

  onMessage(pattern: string, listener: MessageListener): () => void {
    return this.inbox.onMessage(pattern, listener);
  }

  onStream(pattern: string, listener: StreamListener): () => void {
    return this.inbox.onStream(pattern, listener);
  }

  private peerRef(id: string): PeerRef {
    return { id, name: this.peers.nameOf(id) };
  }

  /** A configured peer by id, name or id prefix, else a peer in range or a paired one; a key that moved on, its new key. */
  resolvePeer(reference: string): string {
    return this.acl.successorOf(this.dialer.resolve(this.followed(reference)));
  }

  private endpoint(reference: string): PeerEndpoint {
    return this.dialer.endpoint(this.resolvePeer(reference));
  }

  /**
   * A device id that rotated (a statement held here) when the old id itself is known no more: its
   * successor; any other reference as it is. (A configured peer's old id resolves to its entry, then on.)
   */
  private followed(reference: string): string {
    if (this.peers.has(reference)) return reference;
    const id = reference.trim().toLowerCase();
    return isDeviceId(id) && !this.peers.has(id) && !this.desk.isPaired(id) ? this.acl.successorOf(id) : reference;
  }

  /**
   * A peer's key rotation, from its device document or its answer at a known address: when the ACL takes
   * it (it names a key this device follows), the new key stands in for the old one here. This device's
   * own groups are signed again with it (and travel to the fleet); the configured or paired entry stays
   * under the old key, and names, rules and "known" reach the new key through the rotation (so a later
   * revocation of the old key undoes all of it); the new key is probed at the old one's addresses.
   */
  private async follow(statement: RotationStatement): Promise<void> {
    if (!this.acl.acceptRotation(statement)) return;
    const { from, to } = statement;
    for (const group of this.acl.listGroups()) {
      if (group.owner !== this.id || group.name === REVOKED_GROUP || !group.members.includes(from)) continue;
      await this.groups.set(group.name, group.members.map((member) => (member === from ? to : member)));
    }
    const configured = this.peers.get(from);
    const paired = this.system.paired?.get(from);
    const name = configured?.name ?? paired?.name;
    const addresses = [...(configured?.address ? [configured.address] : []), ...this.dialer.usable(paired?.addresses ?? [])];
    for (const address of new Set(addresses)) this.transports.probe({ address, expectedId: to, name });
    this.emit("rotated", { from, to, name });
  }
}

