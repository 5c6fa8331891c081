import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import type { DiscoveryBeacons } from "../discovery/beacons";
import type { Duplex } from "node:stream";
import { RANK, type Transport, type TransportEvents } from "../discovery/transport";
import { isDeviceId } from "../identity";
import { GattStream } from "./gatt-stream";
import { type BleBindings, type BleStack, loadBleStack, type NobleCharacteristic, type NoblePeripheral } from "./stack";

/** The peer-mesh GATT service: a device id to read, and a byte pipe (RX written by the central, TX notified by the peripheral). */
export const BLE_SERVICE_UUID = "5e6d0a1c8b7f4e3a9d2c1b0a7f6e5d40";
export const BLE_ID_UUID = "5e6d0a1c8b7f4e3a9d2c1b0a7f6e5d41";
export const BLE_RX_UUID = "5e6d0a1c8b7f4e3a9d2c1b0a7f6e5d42";
export const BLE_TX_UUID = "5e6d0a1c8b7f4e3a9d2c1b0a7f6e5d43";
/** Advertised local name: "pm:" and the first 12 characters of the device id (an advertisement has 31 bytes). */
const NAME_PREFIX = "pm:";
const RESULT_SUCCESS = 0x00;
const RESULT_UNLIKELY_ERROR = 0x0e;
const DEFAULT_EXPIRE_MS = 10_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** A private peripheral that matched nobody is read again after a rename at most this often. */
const REREAD_MS = 10_000;
/** A data link whose GATT connection fails (the peripheral busy with another central's brief read) tries again after this. */
const CONNECT_RETRY_MS = 250;
/** The most an attribute value may hold (ATT), so the most a private device's beacons may take. */
const MAX_ATTRIBUTE_BYTES = 512;

export interface BleTransportOptions {
  deviceId: string;
  /** A simulated radio's bindings (tests); without them the machine's adapter through noble and bleno. */
  bindings?: BleBindings;
  /** A device not advertising for this long (and with no open link) is lost. */
  expireMs?: number;
  connectTimeoutMs?: number;
  /**
   * Private discovery: advertise a name that changes with each epoch instead of the id's start, and
   * serve beacons (see DiscoveryBeacons) instead of the id. The radio's own address is the adapter's
   * business: BlueZ randomises it only with LE privacy on in the controller.
   */
  beacons?: DiscoveryBeacons;
}

interface Sighted {
  peripheral: NoblePeripheral;
  /** Who it is: its id, or the known peers its beacons named (private discovery). */
  ids?: string[];
  /**
   * What the last read was made against: the name the peripheral advertised and, for beacons, this
   * device's peer list. A private peripheral takes a new name when its epoch or its peers change, and
   * this device's own new peers may recognise it now: either way it is read again.
   */
  readFor?: { name: string; peers: string; byId: boolean };
  /** When it was last read (a rename alone makes a new read at most every REREAD_MS). */
  readAt: number;
  lastSeen: number;
  readingId: boolean;
}

/**
 * Bluetooth LE: every device is a peripheral (advertising the service, serving the pipe to one central at
 * a time, as bleno does) and a central (scanning, reading each new device's id, and dialling the pipe for
 * the wire). The same mutual TLS and HTTP/2 run through the pipe as over TCP.
 */
export class BleTransport extends EventEmitter<TransportEvents> implements Transport {
  readonly name = "ble";
  readonly rank = RANK.ble;
  readonly carriesIp = false;
  unavailable?: string;
  private stack?: BleStack;
  private readonly sighted = new Map<string, Sighted>();
  private readonly outgoing = new Set<GattStream>();
  private incoming?: GattStream;
  private notifySent?: (err?: Error | null) => void;
  private expiry?: NodeJS.Timeout;
  private renamer?: NodeJS.Timeout;
  private running = false;
  private readonly cleanups: Array<() => void> = [];
  /** The local name advertised now, and the epoch it is for (private discovery). */
  private advertisedName = "";
  private advertisedEpoch?: number;
  private advertisedPeers?: string;
  /** The beacons being read by a central (a long read asks for them in pieces). */
  private served?: Buffer;

  constructor(private readonly options: BleTransportOptions) {
    super();
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      this.stack = loadBleStack(this.options.bindings);
    } catch (err) {
      this.unavailable = (err as Error).message;
      this.emit("warning", new Error(`Bluetooth LE is unavailable: ${this.unavailable}`));
      return;
    }
    await Promise.all([this.startPeripheral(), this.startCentral()]);
    const expireMs = this.options.expireMs ?? DEFAULT_EXPIRE_MS;
    this.expiry = setInterval(() => this.expire(expireMs), Math.max(50, expireMs / 4));
    this.expiry.unref();
    const beacons = this.options.beacons;
    if (beacons) {
      this.renamer = setInterval(() => this.renameIfDue(), Math.max(50, Math.min(1_000, beacons.epochMs / 10)));
      this.renamer.unref();
    }
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    clearInterval(this.expiry);
    clearInterval(this.renamer);
    for (const cleanup of this.cleanups.splice(0)) cleanup();
    for (const stream of this.outgoing) stream.destroy();
    this.incoming?.destroy();
    if (this.stack) {
      this.stack.noble.stopScanning();
      this.stack.bleno.stopAdvertising();
      this.stack.bleno.disconnect();
      for (const entry of this.sighted.values()) if (entry.peripheral.state === "connected") entry.peripheral.disconnect();
    }
    this.sighted.clear();
  }

  /** A byte pipe to the device whose peripheral this transport reported at `address`. */
  connect(address: string): Duplex {
    const stream = new GattStream(address);
    const entry = this.sighted.get(address);
    if (!entry || !this.stack) {
      process.nextTick(() => stream.disconnected("not in range"));
      return stream;
    }
    this.outgoing.add(stream);
    stream.once("close", () => {
      this.outgoing.delete(stream);
      if (entry.peripheral.state === "connected") entry.peripheral.disconnect();
    });
    stream.once("finished", () => stream.destroy());
    const timeoutMs = this.options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const timer = setTimeout(() => stream.disconnected(`no GATT connection within ${timeoutMs} ms`), timeoutMs);
    stream.once("close", () => clearTimeout(timer));
    const peripheral = entry.peripheral;
    const deadline = Date.now() + timeoutMs;
    const connected = (err: Error | null | undefined): void => {
      if (err) {
        // A peripheral serves one central at a time: another's brief id read may hold it for a moment.
        if (!stream.destroyed && Date.now() + CONNECT_RETRY_MS < deadline) {
          setTimeout(attempt, CONNECT_RETRY_MS);
          return;
        }
        return stream.disconnected(err.message);
      }
      if (stream.destroyed) return peripheral.disconnect();
      peripheral.once("disconnect", () => stream.disconnected("disconnected"));
      peripheral.discoverSomeServicesAndCharacteristics([BLE_SERVICE_UUID], [BLE_RX_UUID, BLE_TX_UUID], (discoverErr, _services, characteristics) => {
        const rx = characteristics?.find((c) => c.uuid === BLE_RX_UUID);
        const tx = characteristics?.find((c) => c.uuid === BLE_TX_UUID);
        if (discoverErr || !rx || !tx) return stream.disconnected(discoverErr?.message ?? "the peer-mesh service is missing");
        tx.on("data", (data: Buffer) => {
          entry.lastSeen = Date.now();
          stream.receive(data);
        });
        tx.subscribe((subscribeErr) => {
          if (subscribeErr) return stream.disconnected(subscribeErr.message);
          clearTimeout(timer);
          stream.attach({ chunkBytes: Math.max(20, (peripheral.mtu ?? 23) - 3), send: (chunk, sent) => rx.write(chunk, false, (writeErr) => sent(writeErr)) });
        });
      });
    };
    // This device's own id read shares the noble peripheral: its disconnect would end the link, so the link waits for it.
    const attempt = (): void => {
      if (stream.destroyed) return;
      if (entry.readingId) setTimeout(attempt, CONNECT_RETRY_MS);
      else peripheral.connect(connected);
    };
    attempt();
    return stream;
  }

  private startPeripheral(): Promise<void> {
    const bleno = this.stack!.bleno;
    const { Characteristic, PrimaryService } = bleno;
    const deviceId = Buffer.from(this.options.deviceId);
    const service = new PrimaryService({
      uuid: BLE_SERVICE_UUID,
      characteristics: [
        new Characteristic({
          uuid: BLE_ID_UUID,
          properties: ["read"],
          // A long read comes in pieces (offset): this epoch's beacons are made once per read from the start.
          onReadRequest: (offset, callback) => {
            const beacons = this.options.beacons;
            if (!beacons) return callback(RESULT_SUCCESS, deviceId.subarray(offset));
            if (offset === 0 || !this.served) this.served = beacons.announce(Date.now(), MAX_ATTRIBUTE_BYTES);
            callback(RESULT_SUCCESS, this.served.subarray(offset));
          },
        }),
        new Characteristic({
          uuid: BLE_RX_UUID,
          properties: ["write"],
          onWriteRequest: (data, _offset, _withoutResponse, callback) => {
            if (!this.incoming) return callback(RESULT_UNLIKELY_ERROR);
            this.incoming.receive(data, () => callback(RESULT_SUCCESS));
          },
        }),
        new Characteristic({
          uuid: BLE_TX_UUID,
          properties: ["notify"],
          // A central subscribing to TX opens the pipe (a central that only reads the id never does).
          onSubscribe: (maxValueSize, update) => this.acceptPipe(maxValueSize, update),
          onUnsubscribe: () => this.incoming?.disconnected("the central unsubscribed"),
          onNotify: () => {
            const sent = this.notifySent;
            this.notifySent = undefined;
            sent?.();
          },
        }),
      ],
    });
    const onDisconnect = (): void => {
      this.incoming?.disconnected("the central disconnected");
      this.incoming = undefined;
      const sent = this.notifySent;
      this.notifySent = undefined;
      sent?.(new Error("disconnected"));
    };
    bleno.on("disconnect", onDisconnect);
    this.cleanups.push(() => bleno.off("disconnect", onDisconnect));
    return whenPoweredOn(bleno, this.cleanups).then(
      () =>
        new Promise<void>((resolve, reject) => {
          bleno.setServices([service], (err) => {
            if (err) return reject(err);
            this.advertise((advertiseErr) => (advertiseErr ? reject(advertiseErr) : resolve()));
          });
        }),
    );
  }

  /** Advertises the id's start, or (private) a random name for this epoch. */
  private advertise(done: (err?: Error | null) => void = () => undefined): void {
    const bleno = this.stack!.bleno;
    const beacons = this.options.beacons;
    if (beacons) {
      this.advertisedEpoch = beacons.epochOf(Date.now());
      this.advertisedPeers = beacons.peersVersion();
      this.advertisedName = `${NAME_PREFIX}${randomBytes(6).toString("hex")}`;
    } else {
      this.advertisedName = `${NAME_PREFIX}${this.options.deviceId.slice(0, 12)}`;
    }
    bleno.startAdvertising(this.advertisedName, [BLE_SERVICE_UUID], done);
  }

  /**
   * A private device takes a new name with each epoch, and when its peers change (a pairing, a key
   * learnt): centrals that read it before then read its new beacons.
   */
  private renameIfDue(): void {
    const beacons = this.options.beacons;
    if (!beacons || !this.stack || (beacons.epochOf(Date.now()) === this.advertisedEpoch && beacons.peersVersion() === this.advertisedPeers)) return;
    this.stack.bleno.stopAdvertising();
    this.advertise((err) => err && this.emit("warning", err));
  }

  private acceptPipe(maxValueSize: number, update: (data: Buffer) => void): void {
    this.incoming?.disconnected("replaced by a new central");
    const stream = new GattStream("central");
    this.incoming = stream;
    stream.attach({
      chunkBytes: maxValueSize,
      send: (chunk, sent) => {
        this.notifySent = sent;
        update(chunk);
      },
    });
    stream.once("finished", () => stream.destroy());
    stream.once("close", () => {
      if (this.incoming !== stream) return;
      this.incoming = undefined;
      this.stack?.bleno.disconnect();
    });
    this.emit("connection", stream);
  }

  private startCentral(): Promise<void> {
    const noble = this.stack!.noble;
    const onDiscover = (peripheral: NoblePeripheral): void => this.onSighting(peripheral);
    noble.on("discover", onDiscover);
    this.cleanups.push(() => noble.off("discover", onDiscover));
    return whenPoweredOn(noble, this.cleanups).then(() => new Promise<void>((resolve) => noble.startScanning([BLE_SERVICE_UUID], true, () => resolve())));
  }

  private onSighting(peripheral: NoblePeripheral): void {
    const name = peripheral.advertisement.localName ?? "";
    if (!name.startsWith(NAME_PREFIX) || name === this.advertisedName) return;
    let entry = this.sighted.get(peripheral.uuid);
    if (!entry) {
      entry = { peripheral, lastSeen: 0, readAt: 0, readingId: false };
      this.sighted.set(peripheral.uuid, entry);
    }
    entry.lastSeen = Date.now();
    // Meanwhile the ids it was read as are still in range (the same radio).
    if (entry.ids) for (const id of entry.ids) this.emit("found", { id, address: peripheral.uuid, verified: false });
    if (!entry.readingId && this.wantsRead(entry, name)) this.readId(entry);
  }

  /**
   * Whether to read a peripheral (again). Never while this device holds a data link to it: the read's
   * brief connection is the same noble peripheral, and its disconnect would take the link down. A device
   * recognised once is the same radio after it renames: read again only when this device's peers change.
   * One that matched nobody: when its name changes too (a new epoch, or its own peers changed), at most
   * every REREAD_MS, since each read holds its peripheral (which serves one central at a time).
   */
  private wantsRead(entry: Sighted, name: string): boolean {
    const read = entry.readFor;
    if (!entry.ids || !read) return true;
    if (read.byId || [...this.outgoing].some((stream) => stream.remote === entry.peripheral.uuid)) return false;
    if (this.options.beacons?.peersVersion() !== read.peers) return true;
    return entry.ids.length === 0 && name !== read.name && Date.now() - entry.readAt >= REREAD_MS;
  }

  /**
   * The advertisement has room for a short form of the id only: the full id is read over a brief GATT
   * connection (unauthenticated, like an mDNS TXT record; the TLS handshake proves it later).
   */
  private readId(entry: Sighted): void {
    entry.readingId = true;
    const { peripheral } = entry;
    const name = String(peripheral.advertisement.localName);
    const peersVersion = this.options.beacons?.peersVersion() ?? "";
    const done = (data?: Buffer): void => {
      const found = (): void => {
        entry.readingId = false;
        if (!data || !this.running) return;
        const ids = this.idsIn(data, name);
        // A private device nobody here knows is asked again only when its name or this device's peers change.
        entry.readFor = { name, peers: peersVersion, byId: isDeviceId(data.toString("utf8")) };
        entry.readAt = Date.now();
        for (const id of entry.ids ?? []) if (!ids.includes(id)) this.emit("lost", id);
        entry.ids = ids;
        for (const id of ids) this.emit("found", { id, address: peripheral.uuid, verified: false });
      };
      // Found only once this brief link is gone: a data link opened on "found" would otherwise take this
      // link's late "disconnect" for its own and drop (the event comes a turn later, and under load after
      // the next connection is up).
      if (peripheral.state !== "connected") return found();
      peripheral.once("disconnect", found);
      peripheral.disconnect();
    };
    peripheral.connect((err) => {
      if (err) return done();
      peripheral.discoverSomeServicesAndCharacteristics([BLE_SERVICE_UUID], [BLE_ID_UUID], (discoverErr, _services, characteristics) => {
        const idCharacteristic: NobleCharacteristic | undefined = characteristics?.find((c) => c.uuid === BLE_ID_UUID);
        if (discoverErr || !idCharacteristic) return done();
        idCharacteristic.read((readErr, data) => done(readErr || !data ? undefined : data));
      });
    });
  }

  /** Who a peripheral is: the id it serves (matching its advertised start), or the known peers its beacons name. */
  private idsIn(data: Buffer, advertisedName: string): string[] {
    const text = data.toString("utf8");
    if (isDeviceId(text)) return text.startsWith(advertisedName.slice(NAME_PREFIX.length)) ? [text] : [];
    return this.options.beacons?.recognise(data) ?? [];
  }

  private expire(expireMs: number): void {
    const now = Date.now();
    const linked = new Set([...this.outgoing].map((stream) => stream.remote));
    for (const [address, entry] of this.sighted) {
      if (now - entry.lastSeen <= expireMs || linked.has(address) || entry.readingId) continue;
      this.sighted.delete(address);
      for (const id of entry.ids ?? []) this.emit("lost", id);
    }
  }
}

/** Resolves once the adapter is powered on (noble and bleno both say so with "stateChange"). */
function whenPoweredOn(stack: EventEmitter & { state: string }, cleanups: Array<() => void>): Promise<void> {
  return new Promise((resolve) => {
    const onState = (state: string): void => {
      if (state !== "poweredOn") return;
      stack.off("stateChange", onState);
      resolve();
    };
    stack.on("stateChange", onState);
    cleanups.push(() => stack.off("stateChange", onState));
    if (stack.state === "poweredOn") onState("poweredOn");
  });
}
