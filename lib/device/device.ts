import { EventEmitter } from "node:events";
import path from "node:path";
import type { Readable } from "node:stream";
import { Acl } from "../acl/acl";
import { AclStore } from "../acl/acl-store";
import { advertisedHost, formatPairingCode, parsePairingCode } from "../acl/pairing";
import { PairedPeer, PairedPeers } from "../acl/paired-peers";
import { DEFAULT_PAIRING_WINDOW_MS, PeerRef, PendingPairing, PendingPairings } from "../acl/pending-pairings";
import { GROUP_PRINCIPAL_PREFIX, GroupDoc, GroupError, groupPrincipal, parseGroupReference } from "../acl/signed-group";
import { KnownPeer, PeerDirectory, validateKnownPeers } from "../discovery/peer-directory";
import { PeerTable } from "../discovery/peer-table";
import type { DialEntry, Transport } from "../discovery/transport";
import { Identity, shortId } from "../identity";
import { Mesh } from "../mesh/mesh";
import { MeshSync, MeshSyncOptions } from "../mesh/sync";
import { joinAddress } from "../protocol/address";
import type { CouchReply, CouchRequest } from "../protocol/couch";
import { WireError } from "../protocol/errors";
import type { Ack, Authorizer, DatabaseTarget, Verb } from "../protocol/wire";
import type { Direction, ReplicateOptions, SyncReport } from "../replication/replicator";
import type { ByteCounter } from "../replication/wire-fetch";
import type { Database } from "../storage/database";
import { acquireDatabase, DatabaseLease } from "../storage/open-databases";
import { describeStorageError, StorageError } from "../storage/storage-error";
import { TorStatus, TorTransport } from "../tor/tor-transport";
import { ClientPool, PeerEndpoint, SendOptions, StreamOptions } from "../wire/client-pool";
import { ClientResponse, errorFromResponse } from "../wire/http2-io";
import { IncomingMessage, IncomingPairing, IncomingStream, Receiver, WireServer } from "../wire/server";
import { DatabaseHost } from "./database-host";
import { Dialer } from "./dialer";
import { Inbox, type MessageListener, type ReceivedMessage, type ReceivedStream, type StreamListener } from "./inbox";
import { checkDeviceOptions, type DeviceOptions, type DiscoveryOptions, type TorOptions } from "./options";
import { createTransports, probeAddress } from "./transports";

export type { PeerRef, PendingPairing, MessageListener, ReceivedMessage, ReceivedStream, StreamListener, DeviceOptions, DiscoveryOptions, TorOptions };

/** Members of one group from another owner kept at most. */
const MAX_FOREIGN_GROUP_MEMBERS = 1_000;

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
export class Device extends EventEmitter<DeviceEvents> implements Receiver {
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
  /** The open databases this device uses (shared per directory in the process; see open-databases.ts). */
  private systemLease?: DatabaseLease;
  private readonly databaseHost: DatabaseHost;
  private readonly pairings: PendingPairings;
  private readonly dialer: Dialer;
  private pairedPeerStore?: PairedPeers;
  /** Why this device's storage could not be used at start, when it could not (it runs without it). */
  storageError?: StorageError;
  private aclStore?: AclStore;
  private meshStore?: Mesh;
  private readonly server: WireServer;
  private readonly pool: ClientPool;
  /** Streams this device is sending, so that a revoked receive permission can end them. */
  private readonly outgoingStreams = new Set<{ peerId: string; resource: string; body: Readable }>();
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
      receiver: this,
    });
    this.server.on("refused", (info) => this.emit("refused", info));
    // A revoked key loses its open streams now, not when they end.
    this.acl.on("changed", () => {
      void this.server.reauthorize();
      void this.recheckOutgoingStreams();
    });
    this.pool = new ClientPool(options.identity, { idleMs: options.idleConnectionMs });
    this.dialer = new Dialer({
      peers: this.peers,
      peerTable: this.peerTable,
      transports: () => this.transports,
      hasTor: !!options.discovery?.tor,
      torOnly: this.torOnly,
      mesh: () => this.meshStore,
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
    this.started ??= this.openAcl().then(() => this.server.listen()).then(async (address) => {
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
  private async openAcl(): Promise<void> {
    const groups = this.options.acl?.groups ?? [];
    if (this.options.storageDir) await this.openStorage(this.options.storageDir);
    for (const group of groups) await this.setGroup(group.name, group.members);
    if (this.database) await this.databaseHost.open();
    if (this.database) {
      this.meshStore = new Mesh({ ...this.options.mesh, identity: this.identity, name: this.options.name, db: this.database, groupMembers: (to) => this.groupMembers(to), checkGroup: (doc) => this.checkGroup(doc), resolvePeer: (reference) => {
        try {
          return this.resolvePeer(reference);
        } catch {
          return undefined;
        }
      } });
      this.meshStore.on("rejected", (info) => this.emit("rejected", info));
      // A known peer's device document that names an onion address: Tor probes it from now on.
      this.meshStore.on("onion", ({ id, onion }) => {
        if (this.peers.has(id) || this.isPaired(id)) this.probe({ address: onion, expectedId: id, name: this.peers.nameOf(id) });
      });
      await this.meshStore.start().catch((err: unknown) => this.storageFailed(err, path.join(this.options.storageDir!, "system")));
    }
  }

  private async openStorage(storageDir: string): Promise<void> {
    const directory = path.join(storageDir, "system");
    try {
      this.systemLease = await acquireDatabase(directory);
      this.aclStore = new AclStore(this.systemLease.db, this.acl);
      await this.aclStore.open();
      this.pairedPeerStore = new PairedPeers(this.systemLease.db);
      for (const peer of await this.pairedPeerStore.load()) {
        const address = this.dialer.usable(peer.addresses)[0];
        if (address) this.dialer.notePaired(peer.id, address);
      }
    } catch (err) {
      await this.storageFailed(err, directory);
    }
  }

  /** Storage errors at start: the device goes on without its storage, and says where and what to do. */
  private async storageFailed(err: unknown, directory: string): Promise<void> {
    this.storageError = describeStorageError(err, directory);
    await this.meshStore?.stop().catch(() => undefined);
    await this.aclStore?.close().catch(() => undefined);
    this.systemLease?.release();
    this.systemLease = undefined;
    this.meshStore = undefined;
    this.aclStore = undefined;
    this.pairedPeerStore = undefined;
    this.emit("warning", this.storageError, "storage");
  }

  /** Store-and-forward messages; present when the device has storage. */
  get mesh(): Mesh {
    if (this.storageError) throw this.storageError;
    if (!this.meshStore) throw new WireError("CLOSED", this.options.storageDir ? "the device has not started yet" : "the mesh needs a storage directory (storageDir)");
    return this.meshStore;
  }

  /** msg.to as a group: group:<owner id>/<name>, group:<name> or a bare name of this device's own groups. */
  private groupMembers(to: string): { to: string; members: string[] } | undefined {
    const reference = parseGroupReference(to, { bare: true });
    const owner = reference?.owner ?? this.id;
    const group = reference && this.acl.group(owner, reference.name);
    if (!group) {
      if (to.startsWith(GROUP_PRINCIPAL_PREFIX)) throw new WireError("UNKNOWN_PEER", `no group ${to} is known to this device`);
      return undefined;
    }
    return { to: groupPrincipal(owner, group.name), members: group.members };
  }

  /**
   * A group document from a peer or a relay is kept only if its owner is this device, a known or paired
   * peer, or named in a rule (group:<owner>/<name>): anyone can sign groups with a fresh key, and each
   * would cost storage and an ACL rebuild. Members are capped (groups per owner: the mesh); an older
   * version than the one in force is a replay.
   */
  private checkGroup(doc: GroupDoc): void {
    const owner = doc.owner;
    if (!this.acl.namesGroupOwner(owner) && !this.peers.has(owner) && !this.isPaired(owner)) {
      throw new GroupError(`${doc._id}: its owner ${shortId(owner)} is neither a known peer nor named in this device's rules`);
    }
    if (owner !== this.id && doc.members.length > MAX_FOREIGN_GROUP_MEMBERS) throw new GroupError(`${doc._id} has ${doc.members.length} members; this device keeps ${MAX_FOREIGN_GROUP_MEMBERS} at most in another owner's group`);
    const held = this.acl.group(owner, doc.name);
    if (held && held.version > doc.version) throw new GroupError(`${doc._id} version ${doc.version} is older than the version ${held.version} in force`);
    if (held && held.version === doc.version && held.signature !== doc.signature) throw new GroupError(`${doc._id} version ${doc.version} differs from the copy in force with the same version`);
  }

  /** Whether this device's ACL lets `peerId` do `verb` on `resource` (what the wire would answer it). */
  allows(peerId: string, verb: Verb, resource: string): Promise<boolean> {
    return Promise.resolve(this.authorizer(peerId, verb, resource));
  }

  /** The database holding this device's groups (and, later, its mesh documents), when it has storage. */
  private get database(): Database | undefined {
    return this.systemLease?.db;
  }

  get systemDatabase(): Database | undefined {
    return this.database;
  }

  /** Gives this device's group `name` exactly these members, signed anew (and stored) if they changed. */
  async setGroup(name: string, members: string[]): Promise<void> {
    const revised = this.acl.revise(this.identity, name, members);
    if (!revised) return;
    await this.aclStore?.save(revised);
    this.acl.acceptGroup(revised);
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
      ...(this.pairedPeerStore?.list() ?? []).filter((peer) => !this.peers.get(peer.id)?.address).flatMap((peer) => peer.addresses.map((address) => ({ address, expectedId: peer.id, name: peer.name }))),
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
    await this.meshStore?.stop();
    await this.aclStore?.close();
    await this.pairedPeerStore?.close().catch(() => undefined);
    // Released, not closed: a device started again on this storage (a Node-RED redeploy) takes them over open.
    this.systemLease?.release();
  }

  async send(peer: string, topic: string, payload: unknown, options?: SendOptions): Promise<Ack> {
    const endpoint = this.endpoint(peer);
    await this.ensureMayReceive(endpoint.id, `msg/${topic}`);
    return this.pool.message(endpoint, topic, payload, options);
  }

  async sendStream(peer: string, topic: string, body: Readable, options?: StreamOptions): Promise<Ack> {
    let endpoint;
    try {
      endpoint = this.endpoint(peer);
      await this.ensureMayReceive(endpoint.id, `stream/${topic}`);
    } catch (err) {
      body.destroy();
      throw err;
    }
    const outgoing = { peerId: endpoint.id, resource: `stream/${topic}`, body };
    this.outgoingStreams.add(outgoing);
    try {
      return await this.pool.stream(endpoint, topic, body, options);
    } finally {
      this.outgoingStreams.delete(outgoing);
    }
  }

  /** After an ACL change: outgoing streams to peers no longer allowed to receive them end now. */
  private async recheckOutgoingStreams(): Promise<void> {
    for (const outgoing of [...this.outgoingStreams]) {
      if (await this.authorizer(outgoing.peerId, "receive", outgoing.resource)) continue;
      if (!this.outgoingStreams.delete(outgoing)) continue;
      outgoing.body.destroy(new WireError("REFUSED", `${this.peers.label(outgoing.peerId)} is no longer allowed to receive ${outgoing.resource}`));
    }
  }

  onMessage(pattern: string, listener: MessageListener): () => void {
    return this.inbox.onMessage(pattern, listener);
  }

  onStream(pattern: string, listener: StreamListener): () => void {
    return this.inbox.onStream(pattern, listener);
  }

  /** @internal called by the wire server for an authorised message. */
  acceptMessage(message: IncomingMessage): Promise<number> {
    return this.inbox.acceptMessage(message);
  }

  /** @internal called by the wire server for an authorised stream; copies it to every matching listener. */
  acceptStream(stream: IncomingStream): Promise<{ receivers: number; bytes: number }> {
    return this.inbox.acceptStream(stream);
  }

  /** A database this device keeps (one of options.databases). */
  openDatabase(name: string): Database {
    return this.databaseHost.openDatabase(name);
  }

  /** @internal called by the wire server for a CouchDB-protocol request. */
  serveDatabase(peerId: string, target: DatabaseTarget, request: CouchRequest): Promise<CouchReply> {
    return this.databaseHost.serve(peerId, target, request);
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
    const port = this.port;
    if (port === undefined) throw new WireError("CLOSED", "the device is not listening yet");
    const host = advertisedHost(this.options.host ?? "127.0.0.1");
    const onion = this.torTransport?.onionAddress;
    if (this.torOnly && !onion) throw new WireError("CLOSED", `Tor has not added this device's onion service yet (${describeTor(this.torTransport?.status)})`);
    const addresses = [...(this.torOnly ? [] : [joinAddress(host, port)]), ...(onion ? [onion] : [])];
    return formatPairingCode({ id: this.id, addresses });
  }

  /** Asks the device behind a pairing code to pair; both sides then show the same six digits. */
  async requestPairing(code: string): Promise<PendingPairing> {
    const { id, addresses } = parsePairingCode(code);
    const body = Buffer.from(JSON.stringify({ name: this.options.name }));
    // Direct addresses first (faster), then the onion address; in Tor-only mode the onion address alone.
    const usable = this.dialer.usable(addresses);
    if (usable.length === 0) {
      throw new WireError("UNREACHABLE", this.torOnly ? "the pairing code has no onion address, and this device connects through Tor only" : `the pairing code's device is reachable only through Tor (${addresses.join(", ")}); turn Tor on in this device's identity`);
    }
    let paired: { response: ClientResponse; keyingMaterial: Buffer } | undefined;
    let target!: PeerEndpoint;
    for (const address of usable) {
      target = this.dialer.endpointAt(id, address);
      try {
        paired = await this.pool.pair(target, body);
        break;
      } catch (err) {
        if (address === usable[usable.length - 1]) throw err;
      }
    }
    const { response, keyingMaterial } = paired!;
    if (response.status !== 200) throw errorFromResponse(response);
    return this.pairings.addOutgoing(this.peerRef(target.id), keyingMaterial, [target.address, ...usable.filter((address) => address !== target.address)]);
  }

  private isPaired(id: string): boolean {
    return this.dialer.hasPairedAddress(id) || !!this.pairedPeerStore?.get(id);
  }

  /** The peers this device paired with (kept with its storage), oldest first. */
  pairedPeers(): PairedPeer[] {
    return this.pairedPeerStore?.list() ?? [];
  }

  /** @internal called by the wire server for a pairing request. */
  acceptPairing(request: IncomingPairing): string {
    return this.pairings.acceptIncoming(request);
  }

  /**
   * Opens a pairing window after a physical action on a headless device (a button wired to peer discover):
   * the next pairing request arriving within `ms` may be accepted without typing the digits.
   */
  openPairingWindow(ms = DEFAULT_PAIRING_WINDOW_MS): { until: number } {
    return this.pairings.openWindow(ms);
  }

  listPairings(): PendingPairing[] {
    return this.pairings.list();
  }

  /**
   * Confirms a pairing: the peer joins this device's group `group`. `sas`, when given, must be the six
   * digits this device derived (see PendingPairings.take).
   */
  async confirmPairing(requestId: string, options: { group: string; sas?: string }): Promise<PendingPairing> {
    const pending = this.pairings.take(requestId, options.sas);
    const members = this.acl.group(this.id, options.group)?.members ?? [];
    await this.setGroup(options.group, [...members, pending.peer.id]);
    if (pending.address) {
      this.dialer.notePaired(pending.peer.id, pending.address);
      // Probed from now on, as it will be after a restart (paired peers join the configured addresses then).
      this.probe({ address: pending.address, expectedId: pending.peer.id, name: pending.peer.name });
    }
    this.pairings.settle(requestId);
    // Kept with the storage, so that the pairing (and where the peer listens) outlasts a restart.
    await this.pairedPeerStore?.add({ id: pending.peer.id, name: pending.peer.name, addresses: pending.addresses ?? (pending.address ? [pending.address] : []), group: options.group, pairedAt: Date.now() });
    return pending;
  }

  rejectPairing(requestId: string): boolean {
    return this.pairings.reject(requestId);
  }

  /** What this device sends is for peers its ACL lets receive it, whatever the peer would accept. */
  private async ensureMayReceive(peerId: string, resource: string): Promise<void> {
    if (await this.authorizer(peerId, "receive", resource)) return;
    throw new WireError("REFUSED", `this device's ACL does not let ${this.peers.label(peerId)} receive ${resource}`);
  }

  /** A configured peer by id, name or id prefix, else a peer in range or a paired one. */
  resolvePeer(reference: string): string {
    return this.dialer.resolve(reference);
  }

  private endpoint(reference: string): PeerEndpoint {
    return this.dialer.endpoint(reference);
  }
}

function describeTor(status: TorStatus | undefined): string {
  if (!status) return "Tor is off";
  return status.error ?? `${status.state}, ${status.progress} %`;
}
