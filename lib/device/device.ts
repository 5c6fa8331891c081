import { EventEmitter } from "node:events";
import type { Readable } from "node:stream";
import { Acl } from "../acl/acl";
import type { PairedPeer } from "../acl/paired-peers";
import { DEFAULT_PAIRING_WINDOW_MS, PeerRef, PendingPairing, PendingPairings } from "../acl/pending-pairings";
import { KnownPeer, PeerDirectory, validateKnownPeers } from "../discovery/peer-directory";
import { PeerTable } from "../discovery/peer-table";
import type { DialEntry, Transport } from "../discovery/transport";
import type { Identity } from "../identity";
import { Mesh } from "../mesh/mesh";
import { MeshSync, MeshSyncOptions } from "../mesh/sync";
import { WireError } from "../protocol/errors";
import type { Ack, Authorizer, Verb } from "../protocol/wire";
import type { Direction, ReplicateOptions, SyncReport } from "../replication/replicator";
import type { ByteCounter } from "../replication/wire-fetch";
import type { Database } from "../storage/database";
import type { StorageError } from "../storage/storage-error";
import { TorStatus, TorTransport } from "../tor/tor-transport";
import { ClientPool, PeerEndpoint, SendOptions, StreamOptions } from "../wire/client-pool";
import { WireServer } from "../wire/server";
import { DatabaseHost } from "./database-host";
import { Dialer } from "./dialer";
import { DeviceGroups } from "./groups";
import { Outbox } from "./outbox";
import { PairingDesk } from "./pairing-desk";
import { SystemStorage } from "./system-storage";
import { Inbox, type MessageListener, type ReceivedMessage, type ReceivedStream, type StreamListener } from "./inbox";
import { checkDeviceOptions, type DeviceOptions, type DiscoveryOptions, type TorOptions } from "./options";
import { createTransports, probeAddress } from "./transports";

export type { PeerRef, PendingPairing, MessageListener, ReceivedMessage, ReceivedStream, StreamListener, DeviceOptions, DiscoveryOptions, TorOptions };


export interface DeviceEvents {
  /** Someone asked to pair, or this device asked someone: the users compare `sas` and confirm. */
  pairing: [request: PendingPairing];
  refused: [info: { peerId?: string; reason: string }];
  /** A group document failed verification (tampered, unsigned, replayed older version). */
  rejected: [info: { id: string; reason: string }];
  /** A transport hit something worth telling the user that did not stop it. */
  warning: [err: Error, transport: string];
  /** A replication session with `peer` (or the cloud) finished without an error. */
  synced: [peer: string, at: number];
  /** A peer's write to `database` failed because this device's disk is full (the peer was told 507). */
  "storage-full": [database: string, err: Error];
  /** Tor's bootstrap progress, this device's onion address, or a failure changed. */
  tor: [status: TorStatus];
}

/**
 * One device on the mesh: its identity, its listener, its outgoing connections and the receivers that
 * flows registered. This is what a Node-RED identity-config node holds; it has no Node-RED dependency.
 */
export class Device extends EventEmitter<DeviceEvents> {
  readonly identity: Identity;
  readonly peers: PeerDirectory;
  /** The peers in range right now, as the transports report them. */
  readonly peerTable: PeerTable;
  private transports: Transport[] = [];
  private torTransport?: TorTransport;
  private readonly syncTimes = new Map<string, number>();
  /** Who may do what; consulted for every request in and out unless an authorize function replaces it. */
  readonly acl: Acl;
  private authorizer: Authorizer;
  private authorizerReplaced: boolean;
  /** Its own records (groups, pairings, the mesh store) and the databases it keeps, each leased per directory (open-databases.ts). */
  private readonly system: SystemStorage;
  private readonly databaseHost: DatabaseHost;
  private readonly pairings: PendingPairings;
  private readonly dialer: Dialer;
  private readonly desk: PairingDesk;
  private readonly server: WireServer;
  private readonly pool: ClientPool;
  private readonly outbox: Outbox;
  private readonly groups: DeviceGroups;
  private readonly inbox: Inbox;
  private started?: Promise<number>;
  private stopping?: Promise<void>;

  constructor(private readonly options: DeviceOptions) {
    super();
    this.identity = options.identity;
    checkDeviceOptions(options);
    this.peers = new PeerDirectory(options.peers);
    this.pairings = new PendingPairings(options.identity.deviceId, (id) => this.peers.nameOf(id));
    this.pairings.on("pairing", (pending) => this.emit("pairing", pending));
    this.acl = new Acl({ selfId: options.identity.deviceId, rules: options.acl?.rules, isKnown: (id) => this.peers.has(id) });
    this.acl.on("rejected", (info) => this.emit("rejected", info));
    this.authorizer = options.authorize ?? ((peerId, verb, resource) => this.acl.authorize(peerId, verb, resource));
    this.authorizerReplaced = !!options.authorize;
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
      authorize: (peerId, verb, resource) => this.authorizer(peerId, verb, resource),
      // A replaced authorizer is a black box: then everyone may try, and each request is decided by it.
      permits: (peerId, verb, prefix) => this.authorizerReplaced || this.acl.permitsSome(peerId, verb, prefix),
      receiver: {
        acceptMessage: (message) => this.inbox.acceptMessage(message),
        acceptStream: (stream) => this.inbox.acceptStream(stream),
        acceptPairing: (request) => this.pairings.acceptIncoming(request),
        serveDatabase: (peerId, target, request) => this.databaseHost.serve(peerId, target, request),
      },
    });
    this.server.on("refused", (info) => this.emit("refused", info));
    // A revoked key loses its open streams now, not when they end.
    this.acl.on("changed", () => {
      void this.server.reauthorize();
      void this.outbox.recheck();
    });
    this.pool = new ClientPool(options.identity, { idleMs: options.idleConnectionMs });
    this.outbox = new Outbox(this.pool, (peerId, verb, resource) => this.authorizer(peerId, verb, resource), (id) => this.peers.label(id));
    this.system = new SystemStorage(options.storageDir, (err) => this.emit("warning", err, "storage"));
    this.groups = new DeviceGroups({ identity: options.identity, acl: this.acl, knows: (owner) => this.peers.has(owner) || this.desk.isPaired(owner), save: (doc) => this.system.saveGroup(doc) });
    this.dialer = new Dialer({
      peers: this.peers,
      peerTable: this.peerTable,
      transports: () => this.transports,
      hasTor: !!options.discovery?.tor,
      torOnly: this.torOnly,
      mesh: () => this.meshStore,
    });
    this.desk = new PairingDesk({
      selfId: this.id,
      name: options.name,
      host: options.host ?? "127.0.0.1",
      port: () => this.port,
      torOnly: this.torOnly,
      tor: () => this.torTransport,
      pairings: this.pairings,
      dialer: this.dialer,
      pool: this.pool,
      store: () => this.system.paired,
      peerRef: (id) => this.peerRef(id),
      joinGroup: (group, peerId) => this.groups.add(group, peerId),
      probe: (entry) => this.probe(entry),
    });
    this.inbox = new Inbox(options.identity.shortId, (id) => this.peerRef(id));
    this.databaseHost = new DatabaseHost({
      selfId: this.id,
      storageDir: options.storageDir,
      names: options.databases ?? [],
      authorize: (peerId, verb, resource) => this.authorizer(peerId, verb, resource),
      label: (id) => this.peers.label(id),
      resolvePeer: (reference) => this.resolvePeer(reference),
      endpoint: (peerId) => this.endpoint(peerId),
      pool: this.pool,
      mesh: () => this.meshStore,
      storageError: () => this.storageError,
      maxRequestBytes: () => this.server.limits.maxDatabaseRequestBytes,
      onStorageFull: (database, err) => this.emit("storage-full", database, err),
      onWarning: (err) => this.emit("warning", err, "storage"),
    });
  }

  get id(): string {
    return this.identity.deviceId;
  }

  /** Starts listening and discovering once; later calls return the same port. */
  start(): Promise<number> {
    this.started ??= this.openStorage().then(() => this.server.listen()).then(async (address) => {
      this.transports = this.buildTransports(address.port);
      for (const transport of this.transports) {
        this.peerTable.attach(transport);
        transport.on("warning", (err) => this.emit("warning", err, transport.name));
        transport.on("connection", (socket) => this.server.accept(socket));
      }
      await Promise.all(this.transports.map((transport) => transport.start()));
      return address.port;
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
    for (const peer of this.system.paired?.list() ?? []) {
      const address = this.dialer.usable(peer.addresses)[0];
      if (address) this.dialer.notePaired(peer.id, address);
    }
    for (const group of this.options.acl?.groups ?? []) await this.setGroup(group.name, group.members);
    if (!this.system.database) return;
    await this.databaseHost.open();
    const resolvePeer = (reference: string): string | undefined => {
      try {
        return this.resolvePeer(reference);
      } catch {
        return undefined;
      }
    };
    await this.system.startMesh({ ...this.options.mesh, identity: this.identity, name: this.options.name, groupMembers: (to) => this.groups.membersOf(to), checkGroup: (doc) => this.groups.check(doc), resolvePeer }, (mesh) => {
      mesh.on("rejected", (info) => this.emit("rejected", info));
      // A known peer's device document that names an onion address: Tor probes it from now on.
      mesh.on("onion", ({ id, onion }) => {
        if (this.peers.has(id) || this.desk.isPaired(id)) this.probe({ address: onion, expectedId: id, name: this.peers.nameOf(id) });
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
    return Promise.resolve(this.authorizer(peerId, verb, resource));
  }

  /** The database holding this device's groups, pairings and mesh documents, when it has storage. */
  get systemDatabase(): Database | undefined {
    return this.system.database;
  }

  /** Gives this device's group `name` exactly these members, signed anew (and stored) if they changed. */
  setGroup(name: string, members: string[]): Promise<void> {
    return this.groups.set(name, members);
  }

  set authorize(authorize: Authorizer) {
    this.authorizer = authorize;
    this.authorizerReplaced = true;
  }

  /** The transports this start builds, each told the addresses this device knows that it dials. */
  private buildTransports(port: number): Transport[] {
    const transports = createTransports({ identity: this.identity, host: this.options.host ?? "127.0.0.1", port, name: this.options.name, storageDir: this.options.storageDir, discovery: this.options.discovery ?? {} });
    this.torTransport = transports.find((transport): transport is TorTransport => transport instanceof TorTransport);
    this.torTransport?.onStatus((status) => {
      this.emit("tor", status);
      if (status.onion) void this.meshStore?.setOnion(status.onion).catch(() => undefined);
    });
    const configured = [
      ...this.peers.list().flatMap((peer) => (peer.address ? [{ address: peer.address, expectedId: peer.id, name: peer.name }] : [])),
      // Peers paired before this start: probed at the addresses their codes gave, as configured ones are.
      ...(this.system.paired?.list() ?? []).filter((peer) => !this.peers.get(peer.id)?.address).flatMap((peer) => peer.addresses.map((address) => ({ address, expectedId: peer.id, name: peer.name }))),
    ];
    for (const entry of configured) probeAddress(transports, entry);
    return transports;
  }

  /** Tor's bootstrap progress and this device's onion address, when Tor is on. */
  get torStatus(): TorStatus | undefined {
    return this.torTransport?.status;
  }

  private get torOnly(): boolean {
    return !!this.options.discovery?.tor && this.options.discovery.tor.only === true;
  }

  /** Transports that were asked for but cannot run here (BLE with no adapter), with the reason. */
  get unavailableTransports(): Array<{ name: string; reason: string }> {
    return this.transports.flatMap((transport) => (transport.unavailable ? [{ name: transport.name, reason: transport.unavailable }] : []));
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
    if (address) this.probe({ address, expectedId: peers[0].id, name: peers[0].name });
  }

  /** Probes a peer's address with the transport that dials it (Tor for onion addresses). */
  private probe(entry: DialEntry): void {
    probeAddress(this.transports, entry);
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
    // Goodbyes go out while the listener still answers.
    await Promise.all(this.transports.map((transport) => transport.stop().catch((err: Error) => this.emit("warning", err, transport.name))));
    await this.server.close();
    // LevelDB must not be closed under a write still running (a native crash, not an error).
    await this.databaseHost.drainAndRelease();
    // Released, not closed: a device started again on this storage (a Node-RED redeploy) takes them over open.
    await this.system.close();
  }

  send(peer: string, topic: string, payload: unknown, options?: SendOptions): Promise<Ack> {
    return this.outbox.send(() => this.endpoint(peer), topic, payload, options);
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

  /** A database this device keeps (one of options.databases). */
  openDatabase(name: string): Database {
    return this.databaseHost.openDatabase(name);
  }

  /**
   * Replicates one of this device's databases with the same database on a peer, over the wire. Pushing
   * needs this device's ACL to let the peer read it; pulling, to let the peer write it.
   */
  replicate(peer: string, name: string, direction: Direction, options: ReplicateOptions = {}): Promise<SyncReport> {
    return this.databaseHost.replicate(peer, name, direction, options);
  }

  /** Runs `work` on this device's databases; a stop waits for it (and refuses new work) before releasing them. */
  trackDatabaseWork<T>(work: Promise<T>): Promise<T> {
    return this.databaseHost.track(work);
  }

  /** A peer's database at `path` as a PouchDB, every request of it travelling over the wire. */
  remoteDatabase(peerId: string, path: string, counter?: ByteCounter): Database {
    return this.databaseHost.remoteDatabase(peerId, path, counter);
  }

  private peerRef(id: string): PeerRef {
    return { id, name: this.peers.nameOf(id) };
  }

  /** The text (and QR content) another device needs to ask this one to pair. */
  pairingCode(): string {
    return this.desk.code();
  }

  /** Asks the device behind a pairing code to pair; both sides then show the same six digits. */
  requestPairing(code: string): Promise<PendingPairing> {
    return this.desk.request(code);
  }

  /** Confirms a pairing: the peer joins this device's group `group`; `sas`, when given, must be this device's six digits. */
  confirmPairing(requestId: string, options: { group: string; sas?: string }): Promise<PendingPairing> {
    return this.desk.confirm(requestId, options);
  }

  rejectPairing(requestId: string): boolean {
    return this.pairings.reject(requestId);
  }

  listPairings(): PendingPairing[] {
    return this.pairings.list();
  }

  /**
   * Opens a pairing window after a physical action on a headless device (a button wired to peer discover):
   * the next pairing request arriving within `ms` may be accepted without typing the digits.
   */
  openPairingWindow(ms = DEFAULT_PAIRING_WINDOW_MS): { until: number } {
    return this.pairings.openWindow(ms);
  }

  /** The peers this device paired with (kept with its storage), oldest first. */
  pairedPeers(): PairedPeer[] {
    return this.desk.paired();
  }

  /** A configured peer by id, name or id prefix, else a peer in range or a paired one. */
  resolvePeer(reference: string): string {
    return this.dialer.resolve(reference);
  }

  private endpoint(reference: string): PeerEndpoint {
    return this.dialer.endpoint(reference);
  }
}

