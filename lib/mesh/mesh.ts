import { EventEmitter } from "node:events";
import type PouchDB from "pouchdb-node";
import { GroupDoc, GroupError, REVOKED_GROUP, verifyGroup } from "../acl/signed-group";
import { type Identity, isDeviceId, matchDeviceIds, type RotationStatement } from "../identity";
import type { BulkResult, RefusalCode } from "../protocol/couch";
import type { Database } from "../storage/database";
import { purgeDocuments } from "../storage/purge";
import { interceptReplicatedWrites, StoreReplicated } from "../storage/replicated-writes";
import { ACK_DOC_PREFIX, CLOUD_PEER, DEVICE_DOC_PREFIX, GROUP_DOC_PREFIX, MESSAGE_DOC_PREFIX } from "../protocol/doc-ids";
import { WireError } from "../protocol/errors";
import { decodePayload, encodePayload } from "../wire/payload";
import {
  AckDoc,
  BODY_ATTACHMENT,
  DeviceDoc,
  deviceDocId,
  EnvelopeError,
  makeAck,
  makeDeviceDoc,
  MeshMode,
  MessageDoc,
  openMessage,
  sealMessage,
  verifyAck,
  MAX_NEIGHBOUR_READERS,
  neighboursOf,
  verifyDeviceDoc,
  verifyMessage,
} from "./envelope";
import { MESH_SYNC_DEFAULTS } from "./defaults";
import { Router } from "./router";

export interface MeshOptions {
  identity: Identity;
  name?: string;
  /** The device's system database: mesh documents live beside the group documents, and travel with them. */
  db: Database;
  /** The members of a group named in msg.to (group:<owner>/<name>, or a name of this device's own groups). */
  groupMembers(to: string): { to: string; members: string[] } | undefined;
  /** A device id for a name or prefix the device itself knows (its configured peers); undefined if none. */
  resolvePeer?(reference: string): string | undefined;
  /** Stored mesh messages at most, and their bodies' bytes at most; more are refused once cleanup frees nothing. */
  quota?: { docs?: number; bytes?: number };
  /**
   * A directed message not acknowledged by every recipient this long after it was sent is flooded (when
   * a path is known, this plus the time the path takes there and back: see hopMs).
   */
  fallbackMs?: number;
  /** The longest a hop may take: the sync interval (0, syncing on change: hops take no time to count). */
  hopMs?: number;
  /** Links older than this are not used for directed routing. */
  routeFreshMs?: number;
  /** The longest time to live a message may ask for (a relay refuses longer ones). */
  maxTtlMs?: number;
  /** Device documents kept at most (keys and routes of other devices); a flood of new ones beyond is refused. */
  maxDevices?: number;
  sweepIntervalMs?: number;
  /** Changes to the store after which the next sweep compacts it (drops the bodies of what was removed or replaced). */
  compactEveryChanges?: number;
  /** Refuses a group document this device must not keep (an owner it neither names nor trusts, too many members, older than the version in force): throws the reason. */
  checkGroup?(doc: GroupDoc): void;
  /** How far ahead of this device's clock a document's time may be (clocks on small devices drift). */
  clockSkewMs?: number;
  /** Groups of one other owner kept at most (each costs storage and an ACL rebuild). */
  maxGroupsPerOwner?: number;
  /** A revoked key (Acl.isRevoked): nothing it signs is taken or delivered, and nothing is sealed to it. */
  isRevoked?(id: string): boolean;
  /** The statement that moved this device to its key, published in its device document. */
  rotatedFrom?: RotationStatement;
  /** The key a device id moved to (Acl.successorOf): a message to the old key is sealed to the new one. */
  successorOf?(id: string): string;
  /**
   * Private identities: this device's neighbours are sealed to the devices this says may read them (the
   * ones allowed to relay for it) and to itself, instead of published for every relay.
   */
  mayReadNeighbours?(id: string): boolean;
}

export interface SendMeshOptions {
  topic?: string;
  mode?: MeshMode;
  ttlMs?: number;
  priority?: number;
}

export interface MeshMessage {
  id: string;
  from: string;
  to: string;
  topic: string;
  payload: unknown;
  priority: number;
  mode: MeshMode;
  created: number;
  expires: number;
}

export type MeshListener = (message: MeshMessage) => void;

export interface MeshEvents {
  /** A message this device sent was acknowledged by a recipient. */
  acked: [info: { id: string; by: string }];
  /** A document failed verification or decryption (altered, forged, or not ours to read). */
  rejected: [info: { id: string; reason: string }];
  /** A message expired before every recipient acknowledged it. */
  expired: [info: { id: string; from: string; to: string }];
  /** Something was stored locally (sent, or arrived to be relayed or read): a sync may have work. */
  stored: [info: { id: string }];
  /** A device document (this device's or another's, verified) says where Tor reaches that device. */
  onion: [info: { id: string; onion: string }];
  /** A device document carries the statement of its device's move from an old key (verified). */
  rotated: [statement: RotationStatement];
  /**
   * The store was compacted: the bodies of removed and replaced documents are gone from disk, and so are
   * the tombstones of removed ones (`purged` of them).
   */
  compacted: [info: { changes: number; purged: number }];
}

interface Entry {
  id: string;
  kind: "msg" | "ack" | "device" | "group";
  /** The signer: a message's or ack's sender, a device document's device, a group's owner. */
  from?: string;
  /** For an ack, the message it acknowledges. */
  msg?: string;
  /** For device and group documents, the signature of the copy held (an equal time or version must be this copy). */
  sig?: string;
  /** Where the document is headed; empty for documents every device keeps (device and group documents). */
  targets: string[];
  mode: MeshMode;
  priority: number;
  /** Messages and acks: when made. Device documents: `updated`. Groups: their version. */
  created: number;
  expires: number;
  /** What the document costs this device's quota: a message's body and envelope, an ack's JSON. */
  size: number;
}

/** What to do with a replicated document that passed its checks. */
type Disposition =
  /** New and immutable (a message, an ack): stored with the sender's revision. */
  | "store"
  /** A device or group document newer (by its signed time or version) than the one held: stored with the
   * sender's revision (so every honest device holds the same revision and replication does not move it
   * again), and every other leaf of its revision tree is removed, so the current copy is the newest
   * signed one whatever revision numbers a relay chose for older copies. */
  | "newer"
  /** A message in place of a copy this device could not open: written as a local edit over it. */
  | "replace"
  /** The very copy held already: nothing to write. */
  | "held";

/** Tombstones looked for and purged in one go (one changes read, one LevelDB batch). */
const TOMBSTONE_PAGE = 500;

const isMeshDocId = (id: string): boolean => [MESSAGE_DOC_PREFIX, ACK_DOC_PREFIX, DEVICE_DOC_PREFIX, GROUP_DOC_PREFIX].some((prefix) => id.startsWith(prefix));

const DEFAULTS = { docs: MESH_SYNC_DEFAULTS.quotaDocs, bytes: MESH_SYNC_DEFAULTS.quotaMb * 1024 * 1024, fallbackMs: MESH_SYNC_DEFAULTS.fallback * 1000, routeFreshMs: 24 * 3_600_000, maxTtlMs: 30 * 86_400_000, maxDevices: 2_000, sweepIntervalMs: 30_000, compactEveryChanges: 1_000, clockSkewMs: 5 * 60_000, maxGroupsPerOwner: 64 };
/**
 * A device document is rewritten when a neighbour is new or its link was last published this long ago
 * (a quarter of routeFreshMs at most). Every version floods to every device: with a rewrite a minute per
 * link, a 100-device grid moved about 17,000 device documents a minute and never fell quiet (bench,
 * mesh on a 100-device grid). Links count for routing for 24 h by default, so an hour keeps them fresh.
 */
const NEIGHBOUR_REFRESH_MS = 3_600_000;
export const MAX_PRIORITY = 9;

class IgnoredDeletion extends Error {}

/** A well-formed document this device does not take (over, too many, no room), with the code the replicating side reads. */
class Refused extends Error {
  constructor(readonly code: RefusalCode, message: string) {
    super(message);
  }
}

/** The code of an ingest refusal: a signed document that fails its checks (or a group's) is invalid. */
function refusalCode(err: unknown): RefusalCode {
  if (err instanceof Refused || err instanceof EnvelopeError) return err.code;
  if (err instanceof WireError && err.code === "TOO_LARGE") return "full";
  return "invalid";
}

/**
 * Store-and-forward over PouchDB: sends sealed messages, delivers the ones addressed to this device exactly
 * once (the ack document is written before the flow sees the message), purges relayed copies once every
 * recipient acknowledged, expires old documents, keeps within a quota, and picks what to hand each neighbour.
 */
export class Mesh extends EventEmitter<MeshEvents> {
  readonly router: Router;
  private readonly db: Database;
  private readonly identity: Identity;
  private readonly index = new Map<string, Entry>();
  /** Who acknowledged each message: arrays, not Sets (a Set of one costs ~250 bytes, and a device keeps up to 10,000 acks). */
  private readonly acks = new Map<string, string[]>();
  private readonly keys = new Map<string, Buffer>();
  /** Documents that passed ingest's checks and are being written: the quota counts them already. */
  private readonly reserved = new Set<Entry>();
  private readonly onions = new Map<string, string>();
  private ownOnion?: string;
  private readonly messageListeners = new Set<MeshListener>();
  private readonly delivering = new Set<string>();
  private readonly deliveries = new Set<Promise<void>>();
  /** Messages that failed to open here: not tried again. */
  private readonly unreadable = new Set<string>();
  /** What each neighbour is known to hold already (id@rev), so a session does not offer it again. */
  private readonly presentAt = new Map<string, Set<string>>();
  private readonly revs = new Map<string, string>();
  /** Each document's sequence in the store, as the changes feed reported its latest write (0 for what the store held at start). */
  private readonly seqs = new Map<string, number>();
  /** The sequence of the last change the feed brought: a document it has no sequence for was written after. */
  private feedSeq = 0;
  /** Revisions being removed here: the changes feed, which runs behind, must not bring them back. */
  private readonly removing = new Set<string>();
  /** Mesh documents removed here whose tombstones the next compaction purges. */
  private readonly tombstones = new Set<string>();
  /** Whether the tombstones left by earlier runs (and earlier releases, which kept them) have been looked for. */
  private olderTombstonesFound = false;
  /** The neighbours' times as published in this device's document. */
  private neighbours: Record<string, number> = {};
  /** When each neighbour was last seen, published with the next rewrite of the device document. */
  private readonly neighboursSeen = new Map<string, number>();
  /** Who the neighbours were last sealed to (private identities). */
  private sealedFor = new Set<string>();
  private feed?: PouchDB.Changes<object>;
  private sweeper?: NodeJS.Timeout;
  private compacting?: Promise<void>;
  /** The store's update sequence at the last compaction (or at start). */
  private compactedSeq = 0;
  private writing: Promise<unknown> = Promise.resolve();
  private quota: { docs: number; bytes: number };
  private fallbackMs: number;
  private hopMs: number;
  private readonly maxTtlMs: number;
  private readonly maxDevices: number;
  private readonly clockSkewMs: number;
  private readonly maxGroupsPerOwner: number;
  private closed = false;
  /** Whether this device passes on other devices' documents, or only its own (and group documents). */
  relay = true;

  /** The database the mesh documents live in (the device's system database), which mesh sync replicates. */
  get database(): Database {
    return this.db;
  }

  constructor(private readonly options: MeshOptions) {
    super();
    this.db = options.db;
    this.identity = options.identity;
    this.quota = { docs: options.quota?.docs ?? DEFAULTS.docs, bytes: options.quota?.bytes ?? DEFAULTS.bytes };
    this.fallbackMs = options.fallbackMs ?? DEFAULTS.fallbackMs;
    this.hopMs = options.hopMs ?? 0;
    this.maxTtlMs = options.maxTtlMs ?? DEFAULTS.maxTtlMs;
    this.maxDevices = options.maxDevices ?? DEFAULTS.maxDevices;
    this.clockSkewMs = options.clockSkewMs ?? DEFAULTS.clockSkewMs;
    this.maxGroupsPerOwner = options.maxGroupsPerOwner ?? DEFAULTS.maxGroupsPerOwner;
    this.router = new Router(options.routeFreshMs ?? DEFAULTS.routeFreshMs);
    this.guardReplicatedWrites();
  }

  get id(): string {
    return this.identity.deviceId;
  }

  /** Changes the policy at run time (a mesh-sync node's settings): quota, fallback to flood, hop time, relaying. */
  configure(policy: { quota?: { docs?: number; bytes?: number }; fallbackMs?: number; hopMs?: number; relay?: boolean }): void {
    if (policy.quota) this.quota = { docs: policy.quota.docs ?? this.quota.docs, bytes: policy.quota.bytes ?? this.quota.bytes };
    if (policy.fallbackMs !== undefined) this.fallbackMs = policy.fallbackMs;
    if (policy.hopMs !== undefined) this.hopMs = policy.hopMs;
    if (policy.relay !== undefined) this.relay = policy.relay;
  }

  async start(): Promise<void> {
    const { update_seq } = await this.db.info();
    const all = await this.db.allDocs<object>({ include_docs: true });
    for (const row of all.rows) {
      if (!row.doc) continue;
      this.observe(row.doc);
      this.seqs.set(row.id, 0);
    }
    this.feedSeq = Number(update_seq) || 0;
    this.feed = this.db.changes({ since: update_seq, live: true, include_docs: true });
    this.feed.on("change", (change) => {
      const seq = Number(change.seq);
      if (Number.isFinite(seq)) this.feedSeq = seq;
      if (change.deleted) {
        this.forget(change.id);
        for (const key of this.removing) if (key.startsWith(`${change.id}@`)) this.removing.delete(key);
        if (isMeshDocId(change.id)) this.tombstones.add(change.id);
      } else if (change.doc && !this.removing.has(`${change.id}@${change.doc._rev}`)) {
        this.observe(change.doc);
        if (Number.isFinite(seq)) this.seqs.set(change.id, seq);
      }
    });
    this.feed.on("error", () => undefined); // ends with the database; stop() handles that
    const own = this.index.get(deviceDocId(this.id)) ? await this.db.get<DeviceDoc>(deviceDocId(this.id)).catch(() => undefined) : undefined;
    this.neighbours = { ...(own && neighboursOf(own, this.identity)) };
    if (!own || own.name !== this.options.name || own.onion !== this.ownOnion) {
      // Started means known to its own mesh: a neighbour's first /mesh request is handed it (found under
      // load, where that request came before the changes feed had brought the document). Waited for,
      // not observed here directly: observing outside the feed's order made routes go missing.
      const seen = this.whenStored(deviceDocId(this.id), 5_000);
      await this.publishDeviceDoc();
      await seen;
    }
    this.compactedSeq = Number(update_seq) || 0;
    this.sweeper = setInterval(() => void this.sweep().then(() => this.maybeCompact()), this.options.sweepIntervalMs ?? DEFAULTS.sweepIntervalMs);
    this.sweeper.unref();
  }

  /** Resolves once `id` has been observed from the changes feed, or after `ms`. */
  private whenStored(id: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.off("stored", onStored);
        resolve();
      };
      const onStored = ({ id: stored }: { id: string }): void => void (stored === id && done());
      const timer = setTimeout(done, ms);
      timer.unref();
      this.on("stored", onStored);
    });
  }

  async stop(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    this.feed?.cancel();
    await Promise.all([this.writing.catch(() => undefined), this.compacting, ...this.deliveries]);
  }

  /**
   * Compacts the store once enough has changed since the last time. Without it the bodies of every
   * message and ack ever removed, and every replaced device document, stay on disk: PouchDB deletes by
   * writing a tombstone revision and keeps the old one until a compaction. (A 12-minute soak grew each
   * device's store from 1.8 to 8 MB; LevelDB maps what it reads of those files into memory.)
   * The tombstones themselves are purged too: each kept about 210 bytes on disk for good after the
   * compaction, so a device that relays a message a second grew by tens of MB a day, without end. The
   * mesh needs none of them: a removed document's deletion is never passed on (a neighbour ignores it),
   * and a copy offered again is refused by its acks ("delivered") or its expiry, not by the tombstone.
   */
  private async maybeCompact(): Promise<void> {
    if (this.closed || this.compacting) return;
    const seq = Number((await this.db.info().catch(() => undefined))?.update_seq);
    const changes = seq - this.compactedSeq;
    const due = Number.isFinite(changes) && changes >= (this.options.compactEveryChanges ?? DEFAULTS.compactEveryChanges);
    if (this.closed || (!due && this.olderTombstonesFound)) return;
    this.compacting = (async () => {
      await this.db.compact();
      if (!this.olderTombstonesFound) await this.findOlderTombstones();
      // Deleted in LevelDB: its own compactions, as the store grows, take them off disk.
      const purged = await this.purgeTombstones();
      this.compactedSeq = seq;
      this.emit("compacted", { changes, purged });
    })().catch(() => undefined); // the database closed under it (a stop), or a full disk: the next sweep tries again
    await this.compacting;
    this.compacting = undefined;
  }

  /** Tombstones of mesh documents removed before this start (by an earlier run, or a release that kept them). */
  private async findOlderTombstones(): Promise<void> {
    let since: number | string = 0;
    for (;;) {
      const page: { results: Array<{ id: string; deleted?: boolean }>; last_seq: number | string } = await this.db.changes({ since, limit: TOMBSTONE_PAGE });
      for (const change of page.results) if (change.deleted && isMeshDocId(change.id)) this.tombstones.add(change.id);
      if (page.results.length < TOMBSTONE_PAGE || this.closed) break;
      since = page.last_seq;
    }
    this.olderTombstonesFound = true;
  }

  /** Purges the tombstones collected, a page at a time; a document written again since its removal stays. */
  private async purgeTombstones(): Promise<number> {
    let purged = 0;
    while (this.tombstones.size > 0 && !this.closed) {
      const ids = [...this.tombstones].slice(0, TOMBSTONE_PAGE);
      const result = await purgeDocuments(this.db, ids, { onlyDeleted: true });
      for (const id of ids) this.tombstones.delete(id);
      purged += result.purged.length;
    }
    return purged;
  }

  /** Seals a message to a device id or group and stores it; sync sessions carry it from here. */
  async send(to: string, payload: unknown, options: SendMeshOptions = {}): Promise<{ id: string; recipients: string[] }> {
    const { to: address, recipients } = this.recipientsOf(to);
    const keys = recipients.map((id) => {
      const key = this.keys.get(id);
      if (!key) throw new WireError("UNKNOWN_PEER", `no public key for ${id.slice(0, 8)} yet: its device document has not reached this device through the mesh`);
      return { id, key };
    });
    const { body, contentType } = encodePayload(payload);
    const header = Buffer.from(JSON.stringify({ topic: options.topic ?? "", contentType }));
    const plaintext = Buffer.concat([uint32(header.length), header, body]);
    const ttlMs = Math.min(options.ttlMs ?? MESH_SYNC_DEFAULTS.ttl * 1000, this.maxTtlMs);
    const priority = clampPriority(options.priority);
    const doc = sealMessage(this.identity, { to: address, recipients: keys, plaintext, mode: options.mode ?? "flood", priority, ttlMs });
    await this.makeRoom("msg", quotaSize(doc), priority);
    await this.db.put(doc);
    this.observe(doc);
    return { id: doc._id, recipients };
  }

  /** Delivers messages addressed to this device to `listener` (and any waiting ones now); returns an unsubscribe. */
  onMessage(listener: MeshListener): () => void {
    this.messageListeners.add(listener);
    for (const entry of this.index.values()) if (this.isForMe(entry)) void this.deliver(entry.id);
    return () => this.messageListeners.delete(listener);
  }

  /** The neighbours this device's own device document lists, with when each was last recorded. */
  ownNeighbours(): Record<string, number> {
    return { ...this.neighbours };
  }

  /** Where Tor reaches `id`, as its latest device document says. */
  onionOf(id: string): string | undefined {
    return this.onions.get(id);
  }

  /** Puts this device's onion address in its device document (peers reach it through Tor from then on). */
  async setOnion(onion: string | undefined): Promise<void> {
    if (onion === this.ownOnion) return;
    this.ownOnion = onion;
    if (this.feed) await this.publishDeviceDoc();
  }

  /** Records that documents were exchanged with `peer`; the device document says so (for directed routing). */
  async noteNeighbour(peer: string, now = Date.now()): Promise<void> {
    this.neighboursSeen.set(peer, now);
    const last = this.neighbours[peer];
    const refreshMs = Math.min(NEIGHBOUR_REFRESH_MS, (this.options.routeFreshMs ?? DEFAULTS.routeFreshMs) / 4);
    if (last !== undefined && now - last < refreshMs) return;
    // One rewrite brings every neighbour's time up to date: the others' refreshes are then not due for a
    // while, instead of each costing a version of its own.
    for (const [id, seen] of this.neighboursSeen) this.neighbours[id] = Math.max(this.neighbours[id] ?? 0, seen);
    await this.publishDeviceDoc(now);
  }

  /** The neighbour a directed message for `destination` goes to from here now; undefined while no route is known. */
  nextHop(destination: string, now = Date.now()): string | undefined {
    return this.router.nextHop(this.id, destination, now);
  }

  /**
   * The documents this device would hand `neighbour` now, most important first, within a session's limits:
   * device and group documents, acks, then messages by priority. `relay` false: only this device's own.
   */
  selectFor(neighbour: string, limits: { maxDocs?: number; maxBytes?: number; relay?: boolean } = {}, now = Date.now()): string[] {
    const present = this.presentAt.get(neighbour);
    const picked: Entry[] = [];
    for (const entry of this.index.values()) {
      if (entry.expires <= now || present?.has(`${entry.id}@${this.revs.get(entry.id)}`)) continue;
      if (!(limits.relay ?? this.relay) && entry.from !== this.id) continue;
      if (this.routes(entry, neighbour, now)) picked.push(entry);
    }
    picked.sort((a, b) => rank(a) - rank(b) || b.priority - a.priority || a.created - b.created);
    const maxDocs = limits.maxDocs ?? Infinity;
    const maxBytes = limits.maxBytes ?? Infinity;
    const chosen: string[] = [];
    let bytes = 0;
    for (const entry of picked) {
      if (chosen.length >= maxDocs) break;
      if (bytes + entry.size > maxBytes && chosen.length > 0) continue;
      bytes += entry.size;
      chosen.push(entry.id);
    }
    return chosen;
  }

  /**
   * After a session: `neighbour` holds these documents now, so later sessions need not offer them.
   * `sentRevs` (from revisionsOf when the session chose them): what was sent, for a document that
   * changed while the session ran must be offered again. Marking the revision held at the end instead
   * lost a group's next version (a member taken out stayed in at the neighbour).
   */
  markPresent(neighbour: string, ids: string[], sentRevs?: ReadonlyMap<string, string | undefined>): void {
    let present = this.presentAt.get(neighbour);
    if (!present) this.presentAt.set(neighbour, (present = new Set()));
    for (const id of ids) present.add(`${id}@${sentRevs?.get(id) ?? this.revs.get(id)}`);
  }

  /**
   * A sequence below every one of `ids`' latest writes here: a changes read for these documents may
   * start there and miss none. A session looks for the few documents routed to a neighbour, and reading
   * the store from sequence 0 for them made 41 full reads a second in the soak. A document held at start
   * has 0; one the feed has not brought yet (just stored, or never) was written after the feed's position.
   */
  sequenceFloor(ids: readonly string[]): number {
    if (ids.length === 0) return 0;
    let lowest = this.feedSeq + 1;
    for (const id of ids) {
      const seq = this.seqs.get(id);
      if (seq !== undefined && seq < lowest) lowest = seq;
    }
    return Math.max(0, lowest - 1);
  }

  /** The revision held now of each document, to hand markPresent after the session that sends them. */
  revisionsOf(ids: string[]): Map<string, string | undefined> {
    return new Map(ids.map((id) => [id, this.revs.get(id)]));
  }

  /**
   * `neighbour` wrote these documents here (its own sync session pushed them): it holds them, so this
   * device's sessions need not offer them back. Without it a relay handed a neighbour's documents back to
   * it, a session's worth at a time, ahead of its messages: after a neighbour pushed 2,000 device
   * documents, a message waited behind 20 sessions of them. Only the documents held here at the revision
   * the neighbour sent count (a refused one is not kept, a newer one held here is still offered).
   */
  heldBy(neighbour: string, docs: ReadonlyArray<{ _id?: unknown; _rev?: unknown }>): void {
    const same = docs.filter((doc) => typeof doc._id === "string" && typeof doc._rev === "string" && this.index.has(doc._id) && this.revs.get(doc._id) === doc._rev);
    if (same.length > 0) this.markPresent(neighbour, same.map((doc) => doc._id as string));
  }

  /**
   * Documents `neighbour` was known to hold that this device has removed since (every recipient acked, or
   * expired); each is returned once. The cloud keeps what it is given until a device prunes it.
   */
  takeRemovedAt(neighbour: string): string[] {
    const present = this.presentAt.get(neighbour);
    if (!present) return [];
    const gone: string[] = [];
    for (const key of present) {
      const id = key.slice(0, key.lastIndexOf("@"));
      if (this.index.has(id)) continue;
      present.delete(key);
      gone.push(id);
    }
    return gone;
  }

  /** The ids of every mesh document stored here now. */
  storedIds(): Set<string> {
    return new Set(this.index.keys());
  }

  /** How many documents of a kind are stored here (or being stored), and the quota bytes of messages and acks together. */
  private usage(kind: Entry["kind"]): { docs: number; bytes: number } {
    let docs = 0;
    let bytes = 0;
    for (const entries of [this.index.values(), this.reserved.values()]) {
      for (const entry of entries) {
        if (entry.kind === kind) docs++;
        if (entry.kind === "msg" || entry.kind === "ack") bytes += entry.size;
      }
    }
    return { docs, bytes };
  }

  /** Mesh messages stored here now (sent, relayed, or waiting for a listener). */
  get storedMessages(): number {
    return this.usage("msg").docs;
  }

  /** Acks stored here now (this device's own, and those relayed toward a message's sender). */
  get storedAcks(): number {
    return this.usage("ack").docs;
  }

  has(id: string): boolean {
    return this.index.has(id);
  }

  /**
   * Checks replicated documents before they are stored: signatures, keys, sizes, expiry, quota. Each bad
   * one is refused on its own ("forbidden", which PouchDB's replicator reports and steps over).
   */
  async ingest(docs: Array<PouchDB.Existing<object>>, now = Date.now()): Promise<BulkResult[]> {
    const results: BulkResult[] = new Array(docs.length);
    const accepted: Array<{ index: number; doc: PouchDB.Existing<object>; newer: boolean }> = [];
    let devices = this.usage("device").docs;
    const reserved: Entry[] = [];
    for (const [i, doc] of docs.entries()) {
      const id = typeof doc?._id === "string" ? doc._id : "?";
      try {
        const disposition = await this.check(doc, now);
        // Device documents are cheap to forge with fresh keys: a cap keeps a flood of them from filling the store.
        if (id.startsWith(DEVICE_DOC_PREFIX) && !this.index.has(id) && devices >= this.maxDevices) throw new Refused("limit", `${id}: this device keeps ${this.maxDevices} device documents at most`);
        if (disposition === "held") {
          results[i] = { ok: true, id, rev: String(doc._rev) };
          continue;
        }
        if (disposition === "replace") {
          await this.replace(doc);
          results[i] = { ok: true, id, rev: String(doc._rev) };
          continue;
        }
        if (id.startsWith(DEVICE_DOC_PREFIX) && !this.index.has(id)) devices++;
        // Counted by the quota and the per-owner caps from now on, while the write runs (new documents only).
        const entry = this.index.has(id) ? undefined : entryOf(doc);
        if (entry) {
          this.reserved.add(entry);
          reserved.push(entry);
        }
        accepted.push({ index: i, doc, newer: disposition === "newer" });
      } catch (err) {
        // A pruned copy on the cloud comes back as a tombstone on every pull: not an error, and not applied.
        if (err instanceof IgnoredDeletion) {
          results[i] = { ok: true, id, rev: String(doc._rev) };
          continue;
        }
        const reason = (err as Error).message;
        if (err instanceof EnvelopeError || err instanceof GroupError) this.emit("rejected", { id, reason });
        // CouchDB's shape for the wire, and PouchDB's (name, status) for a local replication target.
        results[i] = { id, error: "forbidden", reason, code: refusalCode(err), name: "forbidden", status: 403, message: reason } as BulkResult;
      }
    }
    if (accepted.length > 0) {
      const stored = await this.storeReplicated({ docs: accepted.map((item) => item.doc), new_edits: false }).finally(() => {
        for (const entry of reserved) this.reserved.delete(entry);
      });
      // A replicated write answers with its failures only.
      const failures = new Map((stored as BulkResult[]).filter((outcome) => "error" in outcome).map((outcome) => [outcome.id, outcome]));
      for (const item of accepted) {
        const id = String(item.doc._id);
        const failure = failures.get(id);
        results[item.index] = failure ?? { ok: true, id, rev: String(item.doc._rev) };
        if (failure) continue;
        if (item.newer) await this.dropStaleLeaves(id, signedOrder(item.doc));
        // Known at once, not when the changes feed catches up: the next document's quota check counts it.
        if (item.newer || !this.index.has(id)) this.observe(item.doc);
      }
    }
    return results;
  }

  private async check(doc: PouchDB.Existing<object>, now: number): Promise<Disposition> {
    const id = String(doc?._id);
    if ((doc as { _deleted?: boolean })._deleted) throw new IgnoredDeletion(`${id}: mesh documents end here by ack or expiry, not by another's deletion`);
    const latest = now + this.clockSkewMs;
    const notFromTheFuture = (at: number): void => {
      if (at > latest) throw new EnvelopeError(`${id} is dated ${new Date(at).toISOString()}, ahead of this device's clock by more than ${this.clockSkewMs / 1000} s`);
    };
    const signer = signerOf(doc);
    if (signer && this.isRevoked(signer)) throw new Refused("revoked", `${id} is signed by ${signer.slice(0, 8)}, whose key is revoked`);
    if (id.startsWith(MESSAGE_DOC_PREFIX)) {
      const attachments = (doc as MessageDoc)._attachments ?? {};
      const names = Object.keys(attachments);
      if (names.length !== 1 || names[0] !== BODY_ATTACHMENT) throw new EnvelopeError(`${id} must carry its "${BODY_ATTACHMENT}" attachment and nothing else`);
      const attachment = attachments[BODY_ATTACHMENT];
      if (attachment.data === undefined) throw new Error(`${id} arrived without its body`);
      const body = typeof attachment.data === "string" ? Buffer.from(attachment.data, "base64") : Buffer.from(attachment.data);
      const message = verifyMessage(doc, body);
      notFromTheFuture(message.created);
      if (message.expires <= now) throw new Refused("expired", `${id} has expired`);
      if (message.expires - message.created > this.maxTtlMs) throw new Error(`${id} asks to live longer than this device keeps messages`);
      if (this.allAcked(message._id, message.recipients.map((r) => r.id))) throw new Refused("delivered", `${id} was delivered already`);
      const held = this.index.get(id);
      if (held?.from === message.from) return "held";
      // Another signer's copy holds this id. One this device could not open (a relay re-signed a sealed
      // message as its own, which no longer decrypts) gives way to the next sender's copy; otherwise the first stays.
      if (held && !this.unreadable.has(id)) throw new EnvelopeError(`${id} is held here already, signed by another device`, "conflict");
      if (held) return "replace";
      await this.makeRoom("msg", quotaSize(message), message.priority);
      return "store";
    }
    if (id.startsWith(ACK_DOC_PREFIX)) {
      const ack = verifyAck(doc);
      notFromTheFuture(ack.created);
      if (ack.expires <= now) throw new Refused("expired", `${id} has expired`);
      if (ack.expires - ack.created > this.maxTtlMs) throw new Error(`${id} asks to live longer than this device keeps messages`);
      if (this.index.has(id)) return "held";
      await this.makeRoom("ack", quotaSize(ack), MAX_PRIORITY);
      return "store";
    }
    if (id.startsWith(DEVICE_DOC_PREFIX)) {
      const device = verifyDeviceDoc(doc);
      notFromTheFuture(device.updated);
      return this.newerThanHeld(id, device.updated, device.sig, "written");
    }
    if (id.startsWith(GROUP_DOC_PREFIX)) {
      const group = verifyGroup(doc);
      this.options.checkGroup?.(group);
      // An owner's revocation list always finds room: a full set of its groups must not hold it back.
      if (!this.index.has(id) && group.owner !== this.id && group.name !== REVOKED_GROUP && this.groupsOf(group.owner) >= this.maxGroupsPerOwner) {
        throw new Refused("limit", `${id}: this device keeps ${this.maxGroupsPerOwner} groups of ${group.owner.slice(0, 8)} at most`);
      }
      return this.newerThanHeld(id, group.version, group.signature, "version");
    }
    throw new Error(`${id} is not a mesh document`);
  }

  private groupsOf(owner: string): number {
    let count = 0;
    for (const entries of [this.index.values(), this.reserved.values()]) for (const entry of entries) if (entry.kind === "group" && entry.from === owner) count++;
    return count;
  }

  /** A device document by its signed time, a group by its signed version: only a newer one replaces the copy held. */
  private newerThanHeld(id: string, order: number, sig: string, what: "written" | "version"): Disposition {
    const held = this.index.get(id);
    if (!held || order > held.created) return "newer";
    if (order === held.created && sig === held.sig) return "held";
    const label = what === "written" ? `written at ${new Date(order).toISOString()}` : `version ${order}`;
    throw new EnvelopeError(`${id} ${label} is not newer than the copy this device holds (${what === "written" ? new Date(held.created).toISOString() : `version ${held.created}`}): a replay`, "replayed");
  }

  /**
   * After a newer device or group document is stored: leaves of its revision tree that hold an older
   * signed copy are removed, so the newest signed copy is the one read and passed on, whatever revision
   * numbers a relay gave older copies. Leaves are compared by content, not revision: two ingests may run
   * at once, and the one storing an older copy must not remove a newer one.
   */
  private async dropStaleLeaves(id: string, order: number): Promise<void> {
    const current = await this.db.get(id, { conflicts: true }).catch(() => undefined);
    const conflicts = (current as { _conflicts?: string[] } | undefined)?._conflicts ?? [];
    if (!current || conflicts.length === 0) return;
    for (const leaf of [current._rev, ...conflicts]) {
      const copy = await this.db.get(id, { rev: leaf }).catch(() => undefined);
      if (copy && signedOrder(copy) < order) await this.db.remove({ _id: id, _rev: leaf }).catch(() => undefined);
    }
  }

  /** Writes a message over the copy stored (content only, this device's own revision): the sender's copy in place of one that could not be opened. */
  private async replace(doc: PouchDB.Existing<object>): Promise<void> {
    this.unreadable.delete(doc._id);
    const { _rev, _revisions, _conflicts, ...content } = doc as PouchDB.Existing<object> & { _revisions?: unknown; _conflicts?: unknown };
    void _rev;
    void _revisions;
    void _conflicts;
    for (let attempt = 0; ; attempt++) {
      const current = await this.db.get(doc._id).catch(() => undefined);
      try {
        const written = await this.db.put({ ...content, _id: doc._id, _rev: current?._rev });
        this.observe({ ...content, _id: doc._id, _rev: written.rev } as PouchDB.Existing<object>);
        return;
      } catch (err) {
        // Another write (this device's own, or a second peer's copy) came in between: read the revision again.
        if ((err as { status?: number }).status !== 409 || attempt >= 3) throw err;
      }
    }
  }

  /**
   * Every replicated write into the database passes ingest: through the wire (the /mesh route calls it) and
   * from a pull out of a CouchDB-protocol server (PouchDB's replicator calls bulkDocs with new_edits=false).
   */
  private storeReplicated!: StoreReplicated;
  private guardReplicatedWrites(): void {
    this.storeReplicated = interceptReplicatedWrites(this.db, (write) => this.ingest(write.docs));
  }

  /** Should `neighbour` get this document now? */
  private routes(entry: Entry, neighbour: string, now: number): boolean {
    if (entry.targets.length === 0) return true; // device and group documents reach everyone
    const open = entry.kind === "msg" ? entry.targets.filter((id) => !this.acks.get(entry.id)?.includes(id)) : entry.targets;
    if (open.length === 0 || open.every((id) => id === this.id)) return false;
    if (entry.mode === "flood" || neighbour === CLOUD_PEER) return true;
    if (this.router.forwards(this.id, neighbour, open, now)) return true;
    // Past the fallback time without every ack, flood: either no path is known, or the known one does
    // not deliver (a relay on it is down, or drops what it is given).
    return now - entry.created > this.fallbackMs + this.roundTripMs(entry, open, now);
  }

  /**
   * How long a known path may take to deliver `entry` and bring its ack back: each hop up to one sync
   * interval, there and back, over the longest path from its signer to a recipient still open. With a
   * sync every 30 s and a fixed 60 s, every message 3 or more hops away flooded before its ack could be
   * back (the 100-device grid's directed messages cost 50 KB a hop instead of 11 KB). 0 with no path known.
   */
  private roundTripMs(entry: Entry, open: string[], now: number): number {
    if (this.hopMs === 0) return 0;
    let hops = 0;
    for (const target of open) {
      const known = (entry.from !== undefined ? this.router.hops(entry.from, target, now) : undefined) ?? this.router.hops(this.id, target, now);
      if (known !== undefined) hops = Math.max(hops, known);
    }
    return 2 * hops * this.hopMs;
  }

  private observe(doc: PouchDB.Existing<object> | MessageDoc): void {
    const raw = doc as unknown as PouchDB.Existing<object>;
    this.revs.set(raw._id, raw._rev);
    const id = raw._id;
    if (id.startsWith(MESSAGE_DOC_PREFIX)) {
      const message = doc as MessageDoc;
      const targets = message.recipients.map((r) => r.id);
      this.index.set(id, entryOf(doc)!);
      if (this.allAcked(id, targets)) void this.remove(id);
      else if (this.isForMe(this.index.get(id)!)) void this.deliver(id);
      this.emit("stored", { id });
    } else if (id.startsWith(ACK_DOC_PREFIX)) {
      const ack = doc as AckDoc;
      this.index.set(id, entryOf(doc)!);
      const by = this.acks.get(ack.msg);
      const fresh = !by?.includes(ack.from);
      // A literal of one: an array grown by push reserves room for 17.
      if (!by) this.acks.set(ack.msg, [ack.from]);
      else if (fresh) by.push(ack.from);
      if (fresh && ack.to === this.id) this.emit("acked", { id: ack.msg, by: ack.from });
      const message = this.index.get(ack.msg);
      if (message && this.allAcked(ack.msg, message.targets)) void this.remove(ack.msg);
      this.emit("stored", { id });
    } else if (id.startsWith(DEVICE_DOC_PREFIX)) {
      const device = doc as DeviceDoc;
      // The changes feed runs behind: a copy older than the one already known does not win here.
      const known = this.index.get(id);
      if (known && known.created > device.updated) return;
      // Sealed neighbours this device may not read are no links for it to route by.
      this.router.update({ ...device, neighbours: neighboursOf(device, this.identity) ?? {} });
      this.keys.set(device.id, Buffer.from(device.key, "base64"));
      this.sealAgainFor(device.id);
      if (device.rotatedFrom && device.id !== this.id) this.emit("rotated", device.rotatedFrom);
      if (device.onion && this.onions.get(device.id) !== device.onion) {
        this.onions.set(device.id, device.onion);
        if (device.id !== this.id) this.emit("onion", { id: device.id, onion: device.onion });
      }
      this.index.set(id, entryOf(doc)!);
      this.emit("stored", { id });
    } else if (id.startsWith(GROUP_DOC_PREFIX)) {
      const known = this.index.get(id);
      if (known && known.created > (doc as unknown as GroupDoc).version) return;
      this.index.set(id, entryOf(doc)!);
      // Announced like the rest, so a sync with interval 0 carries it at once: a member taken out of a
      // group stayed in at the other devices until some other mesh document happened to move.
      this.emit("stored", { id });
    }
  }

  private forget(id: string): void {
    const entry = this.index.get(id);
    const key = `${id}@${this.revs.get(id)}`;
    this.index.delete(id);
    this.revs.delete(id);
    this.seqs.delete(id);
    this.unreadable.delete(id);
    // What neighbours hold of it need not be remembered any more, except by the cloud, which is pruned from it.
    for (const [neighbour, present] of this.presentAt) if (neighbour !== CLOUD_PEER) present.delete(key);
    if (entry?.kind === "ack" && entry.msg && entry.from) {
      const by = this.acks.get(entry.msg);
      const at = by?.indexOf(entry.from) ?? -1;
      if (at >= 0) by!.splice(at, 1);
      if (by?.length === 0) this.acks.delete(entry.msg);
    }
  }

  private isForMe(entry: Entry): boolean {
    return entry.kind === "msg" && entry.targets.includes(this.id) && !this.acks.get(entry.id)?.includes(this.id) && !this.unreadable.has(entry.id);
  }

  private allAcked(messageId: string, recipients: string[]): boolean {
    const by = this.acks.get(messageId);
    return !!by && recipients.every((id) => by.includes(id));
  }

  /** Opens a message for this device, writes its ack, then hands it to the listeners: at most once, even across restarts. */
  private deliver(id: string): Promise<void> {
    if (this.messageListeners.size === 0 || this.delivering.has(id) || this.closed) return Promise.resolve();
    // stop() waits for deliveries too: LevelDB closed under a read or write in flight can crash the process.
    const delivery = this.deliverNow(id);
    this.deliveries.add(delivery);
    void delivery.finally(() => this.deliveries.delete(delivery));
    return delivery;
  }

  private async deliverNow(id: string): Promise<void> {
    this.delivering.add(id);
    try {
      const doc = await this.db.get<MessageDoc>(id, { attachments: true, binary: true } as { attachments: boolean });
      // Taken before its author's key was revoked: still not handed to a flow.
      if (this.isRevoked(doc.from)) {
        this.unreadable.add(id);
        this.emit("rejected", { id, reason: `${id} is signed by ${doc.from.slice(0, 8)}, whose key is revoked` });
        return;
      }
      const data = doc._attachments?.[BODY_ATTACHMENT]?.data;
      let message: MeshMessage;
      try {
        const plaintext = openMessage(this.identity, doc, Buffer.isBuffer(data) ? data : Buffer.from(String(data ?? ""), "base64"));
        const headerLength = plaintext.readUInt32BE(0);
        const header = JSON.parse(plaintext.subarray(4, 4 + headerLength).toString("utf8")) as { topic: string; contentType: string };
        const payload = decodePayload(plaintext.subarray(4 + headerLength), header.contentType);
        message = { id, from: doc.from, to: doc.to, topic: header.topic, payload, priority: doc.priority, mode: doc.mode, created: doc.created, expires: doc.expires };
      } catch (err) {
        this.unreadable.add(id);
        this.emit("rejected", { id, reason: (err as Error).message });
        return;
      }
      const ack = makeAck(this.identity, doc);
      await this.makeRoom("ack", quotaSize(ack), MAX_PRIORITY, Date.now(), true);
      try {
        await this.db.put(ack);
      } catch (err) {
        if ((err as { status?: number }).status === 409) return; // acknowledged before: delivered already
        throw err;
      }
      this.observe(ack as unknown as PouchDB.Existing<object>);
      for (const listener of this.messageListeners) listener(message);
    } catch {
      // the database closed under us; the message stays and is delivered after the next start
    } finally {
      this.delivering.delete(id);
    }
  }

  private remove(id: string): Promise<void> {
    const rev = this.revs.get(id);
    this.forget(id);
    if (!rev || this.closed) return Promise.resolve();
    this.removing.add(`${id}@${rev}`);
    const removal = this.db.remove({ _id: id, _rev: rev }).then(() => undefined, () => undefined);
    this.writing = this.writing.then(() => removal);
    return removal;
  }

  /** Removes expired documents; reports messages that expired undelivered. */
  async sweep(now = Date.now()): Promise<number> {
    let removed = 0;
    for (const entry of [...this.index.values()]) {
      if (entry.expires > now) continue;
      if (entry.kind === "msg" && !this.allAcked(entry.id, entry.targets)) this.emit("expired", { id: entry.id, from: entry.from ?? "", to: entry.targets.join(",") });
      if (entry.kind === "msg") this.acks.delete(entry.id);
      await this.remove(entry.id);
      removed++;
    }
    return removed;
  }

  /**
   * Frees space for a message or ack of `size` quota bytes: expired documents first, then (for a message)
   * relayed messages of lower priority, (for an ack) the oldest acks of messages no longer held here.
   * An ack lives as long as its message could (a day by default), so without that a device sending a
   * mesh message every 8.6 s filled its 10,000 acks in a day and refused every ack after: its messages
   * never learnt they had arrived. What an ack still does once its message has gone from here is stop a
   * late copy from being taken again; that is what the oldest give up (README, "Memory").
   * A relayed ack never pushes out a message, nor this device's own receipt (`own` is for writing that
   * receipt): acks anyone can sign, and a flood of them must not make this device take a message twice.
   */
  private async makeRoom(kind: "msg" | "ack", size: number, priority: number, now = Date.now(), own = false): Promise<void> {
    const fits = (): boolean => {
      const { docs } = this.usage(kind);
      return docs + 1 <= this.quota.docs && this.usage("msg").bytes + size <= this.quota.bytes;
    };
    if (fits()) return;
    await this.sweep(now);
    const evictable = [...this.index.values()]
      .filter((entry) => (kind === "ack" ? this.evictableAck(entry, own) : entry.kind === "msg" && entry.priority < priority && entry.from !== this.id && !entry.targets.includes(this.id)))
      .sort((a, b) => a.priority - b.priority || a.created - b.created);
    while (!fits() && evictable.length > 0) await this.remove(evictable.shift()!.id);
    if (own) return; // this device's receipt of a message it holds is written in any case
    if (!fits()) throw new WireError("TOO_LARGE", `the mesh store is full (quota ${this.quota.docs} ${kind === "ack" ? "acks" : "messages"}, ${this.quota.bytes} bytes of messages and acks)${kind === "msg" ? " and nothing of lower priority can be dropped" : ""}`);
  }

  /** An ack whose message has gone from here; this device's own receipts only to make room for another of its own. */
  private evictableAck(entry: Entry, own: boolean): boolean {
    if (entry.kind !== "ack" || !entry.msg || this.index.has(entry.msg)) return false;
    return own || entry.from !== this.id;
  }

  /** Who a message to `to` is sealed to; never a revoked key (whoever stole it would read the message). */
  private recipientsOf(to: string): { to: string; recipients: string[] } {
    const found = this.findRecipients(to);
    const recipients = found.recipients.filter((id) => !this.isRevoked(id));
    if (recipients.length === found.recipients.length) return found;
    if (recipients.length === 0) throw new WireError("REFUSED", `${found.recipients.length === 1 ? `the key ${found.recipients[0].slice(0, 8)} is` : "every member's key is"} revoked: nothing is sealed to it`);
    return { to: found.to, recipients };
  }

  private isRevoked(id: string): boolean {
    return this.options.isRevoked?.(id) ?? false;
  }

  /** The canonical address and recipients of msg.to: a group (members other than this device), a device id, name or id prefix. */
  private findRecipients(to: string): { to: string; recipients: string[] } {
    const group = this.options.groupMembers(to);
    const follow = (id: string): string => this.options.successorOf?.(id) ?? id;
    if (group) {
      const recipients = [...new Set(group.members.map(follow))].filter((id) => id !== this.id);
      if (recipients.length === 0) throw new WireError("UNKNOWN_PEER", `the group ${to} has no other members`);
      return { to: group.to, recipients };
    }
    const wanted = to.trim().toLowerCase();
    if (isDeviceId(wanted)) return { to: follow(wanted), recipients: [follow(wanted)] };
    const known = this.options.resolvePeer?.(to);
    if (known) return { to: known, recipients: [known] };
    // Names come from this device's own configuration only: a name a device announces about itself in
    // its device document is its claim, and anyone can claim "front-door".
    const candidates = matchDeviceIds(to, this.keys.keys());
    if (candidates.length === 1) return { to: candidates[0], recipients: candidates };
    if (candidates.length > 1) throw new WireError("UNKNOWN_PEER", `"${to}" names ${candidates.length} devices on the mesh; use a device id`);
    throw new WireError("UNKNOWN_PEER", `no device or group "${to}" is known to the mesh`);
  }

  /** Who may read this device's neighbours, when they are sealed: itself, and devices allowed to relay for it whose keys are known. */
  private neighbourReaders(): Array<{ id: string; key: Buffer }> | undefined {
    const may = this.options.mayReadNeighbours;
    if (!may) return undefined;
    const others = [...this.keys].filter(([id]) => id !== this.id && may(id) && !this.isRevoked(id)).map(([id, key]) => ({ id, key }));
    const readers = [{ id: this.id, key: this.identity.publicKeySpki }, ...others].slice(0, MAX_NEIGHBOUR_READERS);
    this.sealedFor = new Set(readers.map((reader) => reader.id));
    return readers;
  }

  /**
   * A device allowed to read this one's neighbours whose key arrived after they were sealed: sealed
   * again, or it would route without this device's links until the next refresh (an hour).
   */
  private sealAgainFor(id: string): void {
    if (!this.options.mayReadNeighbours || this.sealedFor.has(id) || id === this.id || Object.keys(this.neighbours).length === 0) return;
    if (!this.options.mayReadNeighbours(id) || this.isRevoked(id)) return;
    this.sealedFor.add(id); // once: a failed write is retried by the next refresh
    void this.publishDeviceDoc().catch(() => undefined);
  }

  private async publishDeviceDoc(now = Date.now()): Promise<void> {
    if (this.closed) return;
    const write = async (): Promise<void> => {
      const existing = await this.db.get<DeviceDoc>(deviceDocId(this.id)).catch(() => undefined);
      // Peers take a device document only when its signed time is later than the one they hold: two
      // versions written in the same millisecond (two neighbours noted at once) must still differ.
      const updated = Math.max(now, (existing?.updated ?? 0) + 1);
      const doc = makeDeviceDoc(this.identity, this.neighbours, this.options.name, updated, this.ownOnion, this.neighbourReaders(), this.options.rotatedFrom);
      await this.db.put({ ...doc, _rev: existing?._rev });
    };
    const next = this.writing.then(write, write);
    this.writing = next.catch(() => undefined);
    await next;
  }
}

/** A document's index entry, as stored or as it would be once stored. */
function entryOf(input: object): Entry | undefined {
  const doc = input as PouchDB.Existing<object>;
  const id = doc._id;
  if (id.startsWith(MESSAGE_DOC_PREFIX)) {
    const message = input as MessageDoc;
    return { id, kind: "msg", from: message.from, targets: message.recipients.map((r) => r.id), mode: message.mode, priority: message.priority, created: message.created, expires: message.expires, size: quotaSize(message) };
  }
  if (id.startsWith(ACK_DOC_PREFIX)) {
    const ack = input as AckDoc;
    return { id, kind: "ack", from: ack.from, msg: ack.msg, targets: [ack.to], mode: ack.mode, priority: MAX_PRIORITY, created: ack.created, expires: ack.expires, size: quotaSize(ack) };
  }
  if (id.startsWith(DEVICE_DOC_PREFIX)) {
    const device = input as DeviceDoc;
    return { id, kind: "device", from: device.id, sig: device.sig, targets: [], mode: "flood", priority: MAX_PRIORITY, created: device.updated, expires: Number.MAX_SAFE_INTEGER, size: 0 };
  }
  if (id.startsWith(GROUP_DOC_PREFIX)) {
    const group = input as GroupDoc;
    return { id, kind: "group", from: group.owner, sig: group.signature, targets: [], mode: "flood", priority: MAX_PRIORITY, created: group.version, expires: Number.MAX_SAFE_INTEGER, size: 0 };
  }
  return undefined;
}

/** Whose key signed a mesh document, by its kind, when it says (checked against the signature later). */
function signerOf(doc: object): string | undefined {
  const { _id, from, id, owner } = doc as { _id?: unknown; from?: unknown; id?: unknown; owner?: unknown };
  if (typeof _id !== "string") return undefined;
  const claimed = _id.startsWith(DEVICE_DOC_PREFIX) ? id : _id.startsWith(GROUP_DOC_PREFIX) ? owner : from;
  return typeof claimed === "string" ? claimed : undefined;
}

/** A device document's signed time, a group's signed version: which of two copies is newer. */
function signedOrder(doc: object): number {
  const { updated, version } = doc as { updated?: unknown; version?: unknown };
  return typeof updated === "number" ? updated : typeof version === "number" ? version : 0;
}

/** What a message or ack costs the quota: its body's real length and its envelope, as JSON. */
function quotaSize(doc: MessageDoc | AckDoc): number {
  const { _attachments, _rev, ...envelope } = doc as MessageDoc;
  void _attachments;
  void _rev;
  return (doc.type === "mesh-msg" ? doc.size : 0) + JSON.stringify(envelope).length;
}

function rank(entry: Entry): number {
  return entry.kind === "device" || entry.kind === "group" ? 0 : entry.kind === "ack" ? 1 : 2;
}

function clampPriority(priority: number | undefined): number {
  if (priority === undefined) return 4;
  if (!Number.isInteger(priority) || priority < 0 || priority > MAX_PRIORITY) throw new WireError("BAD_REQUEST", `priority must be a whole number from 0 to ${MAX_PRIORITY}`);
  return priority;
}

function uint32(value: number): Buffer {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32BE(value);
  return buffer;
}
