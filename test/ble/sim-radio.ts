import { EventEmitter } from "node:events";

/**
 * A simulated Bluetooth LE radio for tests: it implements the binding interfaces of noble (the central's
 * HCI layer, as `@abandonware/noble/with-bindings` takes it) and of bleno (its hci-socket bindings
 * module), so noble's and bleno's own code runs above it unchanged: noble's Peripheral, Service and
 * Characteristic objects, bleno's Characteristic request events. Below that it models what a test needs
 * of the air: advertisements every interval, one central per peripheral, an ATT MTU, a data rate per
 * direction, packet loss repaired by link-layer retransmission (slower, never corrupt), and links that
 * drop.
 */
export interface RadioOptions {
  /** ATT MTU both sides agree on; a write or notification carries MTU - 3 bytes. */
  mtu?: number;
  /** Bytes per second each way on a link. */
  bytesPerSecond?: number;
  /** Chance that a packet is lost and sent again one connection interval later. */
  lossRate?: number;
  connectionIntervalMs?: number;
  advertisingIntervalMs?: number;
  /**
   * How long after a disconnect the host hears of it (a controller reports "disconnection complete" after
   * the link's terminate exchange); by default at the next turn of the event loop.
   */
  disconnectDelayMs?: number;
}

interface Characteristic extends EventEmitter {
  uuid: string;
  properties: string[];
}

interface Service {
  uuid: string;
  characteristics: Characteristic[];
}

interface Link {
  central: SimNobleBindings;
  peripheral: SimBlenoBindings;
  /** When each direction's air is free again (ms, Date.now() scale). */
  busyUntil: { up: number; down: number };
  open: boolean;
}

export class SimRadio {
  readonly mtu: number;
  readonly bytesPerSecond: number;
  readonly lossRate: number;
  readonly connectionIntervalMs: number;
  private readonly disconnectDelayMs?: number;
  private readonly centrals = new Map<string, SimNobleBindings>();
  private readonly peripherals = new Map<string, SimBlenoBindings>();
  private readonly links = new Set<Link>();
  private readonly advertiser: NodeJS.Timeout;
  /** Bytes carried each way, for the benchmark. */
  bytesCarried = 0;

  constructor(options: RadioOptions = {}) {
    this.mtu = options.mtu ?? 247;
    this.bytesPerSecond = options.bytesPerSecond ?? 100_000;
    this.lossRate = options.lossRate ?? 0;
    this.connectionIntervalMs = options.connectionIntervalMs ?? 7.5;
    this.disconnectDelayMs = options.disconnectDelayMs;
    this.advertiser = setInterval(() => this.advertise(), options.advertisingIntervalMs ?? 100);
    this.advertiser.unref();
  }

  /** noble's bindings for the device at `address`. */
  nobleBindings(address: string): SimNobleBindings {
    const bindings = new SimNobleBindings(this, address);
    this.centrals.set(address, bindings);
    return bindings;
  }

  /** The central (noble's bindings) last made for `address`: its "read" events are the attribute reads it made. */
  central(address: string): SimNobleBindings | undefined {
    return this.centrals.get(address);
  }

  /** bleno's bindings for the device at `address`. */
  blenoBindings(address: string): SimBlenoBindings {
    const bindings = new SimBlenoBindings(this, address);
    this.peripherals.set(address, bindings);
    return bindings;
  }

  /** Both for one device, as the BLE transport takes them. */
  device(address: string): { noble: SimNobleBindings; bleno: SimBlenoBindings } {
    return { noble: this.nobleBindings(address), bleno: this.blenoBindings(address) };
  }

  /** Every link of the device at `address` drops at once (out of range, a reset radio). */
  dropLinks(address: string, reason = 0x08 /* connection timeout */): void {
    for (const link of [...this.links]) {
      if (link.central.address === address || link.peripheral.address === address) this.close(link, reason);
    }
  }

  /** The device at `address` stops advertising and every link drops: it has gone. */
  silence(address: string): void {
    const peripheral = this.peripherals.get(address);
    if (peripheral) peripheral.advertising = undefined;
    this.dropLinks(address);
  }

  shutdown(): void {
    clearInterval(this.advertiser);
    for (const link of [...this.links]) this.close(link, 0x16);
  }

  private advertise(): void {
    for (const central of this.centrals.values()) {
      if (!central.scanning) continue;
      for (const peripheral of this.peripherals.values()) {
        if (peripheral.address === central.address || !peripheral.advertising) continue;
        const { name, serviceUuids } = peripheral.advertising;
        const wanted = central.scanning.serviceUuids;
        if (wanted.length > 0 && !serviceUuids.some((uuid) => wanted.includes(uuid))) continue;
        central.emit("discover", peripheral.address, peripheral.address, "random", true, { localName: name, serviceUuids, serviceData: [], manufacturerData: undefined, txPowerLevel: undefined, serviceSolicitationUuids: [] }, -50, true);
      }
    }
  }

  link(central: SimNobleBindings, peripheralAddress: string): Link | Error {
    const peripheral = this.peripherals.get(peripheralAddress);
    if (!peripheral?.advertising) return new Error(`${peripheralAddress} is not in range`);
    if ([...this.links].some((link) => link.peripheral === peripheral)) return new Error(`${peripheralAddress} already serves a central`);
    const link: Link = { central, peripheral, busyUntil: { up: 0, down: 0 }, open: true };
    this.links.add(link);
    return link;
  }

  linkBetween(central: SimNobleBindings, peripheralAddress: string): Link | undefined {
    return [...this.links].find((link) => link.central === central && link.peripheral.address === peripheralAddress && link.open);
  }

  linkOf(peripheral: SimBlenoBindings): Link | undefined {
    return [...this.links].find((link) => link.peripheral === peripheral && link.open);
  }

  close(link: Link, reason: number): void {
    if (!link.open) return;
    link.open = false;
    this.links.delete(link);
    const report = (): void => {
      link.central.emit("disconnect", link.peripheral.address, reason);
      link.peripheral.centralLeft(link.central.address);
    };
    if (this.disconnectDelayMs === undefined) setImmediate(report);
    else setTimeout(report, this.disconnectDelayMs);
  }

  /**
   * Carries `bytes` over the link in one direction, packet by packet at the configured rate, a lost packet
   * costing a connection interval; calls `arrived` when the last one is through (never if the link drops).
   */
  carry(link: Link, direction: "up" | "down", bytes: number, arrived: () => void): void {
    const now = Date.now();
    let airtime = (bytes / this.bytesPerSecond) * 1000;
    while (this.lossRate > 0 && Math.random() < this.lossRate) airtime += this.connectionIntervalMs;
    const start = Math.max(now, link.busyUntil[direction]);
    link.busyUntil[direction] = start + airtime;
    this.bytesCarried += bytes;
    setTimeout(() => link.open && arrived(), Math.max(0, link.busyUntil[direction] - now));
  }
}

/** noble's view of the radio: what `@abandonware/noble/with-bindings` drives. */
export class SimNobleBindings extends EventEmitter {
  scanning?: { serviceUuids: string[] };

  constructor(
    private readonly radio: SimRadio,
    readonly address: string,
  ) {
    super();
  }

  init(): void {
    setImmediate(() => {
      this.emit("addressChange", this.address);
      this.emit("stateChange", "poweredOn");
    });
  }

  setScanParameters(): void {
    setImmediate(() => this.emit("scanParametersSet"));
  }

  startScanning(serviceUuids: string[] = [], allowDuplicates = false): void {
    this.scanning = { serviceUuids };
    setImmediate(() => this.emit("scanStart", allowDuplicates));
  }

  stopScanning(): void {
    this.scanning = undefined;
    setImmediate(() => this.emit("scanStop"));
  }

  reset(): void {
    this.scanning = undefined;
  }

  connect(peripheralUuid: string): void {
    const link = this.radio.link(this, peripheralUuid);
    setTimeout(() => {
      if (link instanceof Error) return this.emit("connect", peripheralUuid, link);
      link.peripheral.centralArrived(this.address, this.radio.mtu);
      this.emit("connect", peripheralUuid, null);
      this.emit("onMtu", peripheralUuid, this.radio.mtu);
    }, this.radio.connectionIntervalMs);
  }

  cancelConnect(peripheralUuid: string): void {
    this.disconnect(peripheralUuid);
  }

  disconnect(peripheralUuid: string): void {
    const link = this.radio.linkBetween(this, peripheralUuid);
    if (link) this.radio.close(link, 0x16 /* local host terminated */);
    else setImmediate(() => this.emit("disconnect", peripheralUuid, 0x16));
  }

  updateRssi(peripheralUuid: string): void {
    setImmediate(() => this.emit("rssiUpdate", peripheralUuid, -50));
  }

  private services(peripheralUuid: string): Service[] {
    return this.radio.linkBetween(this, peripheralUuid)?.peripheral.services ?? [];
  }

  private characteristic(peripheralUuid: string, serviceUuid: string, characteristicUuid: string): Characteristic | undefined {
    return this.services(peripheralUuid).find((service) => service.uuid === serviceUuid)?.characteristics.find((c) => c.uuid === characteristicUuid);
  }

  discoverServices(peripheralUuid: string, uuids: string[] = []): void {
    const found = this.services(peripheralUuid).map((service) => service.uuid).filter((uuid) => uuids.length === 0 || uuids.includes(uuid));
    setTimeout(() => this.emit("servicesDiscover", peripheralUuid, found), this.radio.connectionIntervalMs);
  }

  discoverCharacteristics(peripheralUuid: string, serviceUuid: string, uuids: string[] = []): void {
    const service = this.services(peripheralUuid).find((candidate) => candidate.uuid === serviceUuid);
    const found = (service?.characteristics ?? []).filter((c) => uuids.length === 0 || uuids.includes(c.uuid)).map((c) => ({ uuid: c.uuid, properties: c.properties }));
    setTimeout(() => this.emit("characteristicsDiscover", peripheralUuid, serviceUuid, found), this.radio.connectionIntervalMs);
  }

  read(peripheralUuid: string, serviceUuid: string, characteristicUuid: string): void {
    const link = this.radio.linkBetween(this, peripheralUuid);
    const characteristic = this.characteristic(peripheralUuid, serviceUuid, characteristicUuid);
    if (!link || !characteristic) return;
    characteristic.emit("readRequest", 0, (_result: number, data?: Buffer) => {
      const value = Buffer.from(data ?? Buffer.alloc(0));
      this.radio.carry(link, "down", value.length, () => this.emit("read", peripheralUuid, serviceUuid, characteristicUuid, value, false));
    });
  }

  write(peripheralUuid: string, serviceUuid: string, characteristicUuid: string, data: Buffer, withoutResponse: boolean): void {
    const link = this.radio.linkBetween(this, peripheralUuid);
    const characteristic = this.characteristic(peripheralUuid, serviceUuid, characteristicUuid);
    if (!link || !characteristic) return;
    if (data.length > this.radio.mtu - 3) throw new Error(`a write of ${data.length} bytes exceeds the ATT MTU of ${this.radio.mtu}`);
    const copy = Buffer.from(data);
    this.radio.carry(link, "up", copy.length, () =>
      characteristic.emit("writeRequest", copy, 0, withoutResponse, () => {
        if (!withoutResponse && link.open) this.emit("write", peripheralUuid, serviceUuid, characteristicUuid);
      }),
    );
  }

  notify(peripheralUuid: string, serviceUuid: string, characteristicUuid: string, enable: boolean): void {
    const link = this.radio.linkBetween(this, peripheralUuid);
    const characteristic = this.characteristic(peripheralUuid, serviceUuid, characteristicUuid);
    if (!link || !characteristic) return;
    if (enable) {
      characteristic.emit("subscribe", this.radio.mtu - 3, (data: Buffer) => {
        const copy = Buffer.from(data);
        if (copy.length > this.radio.mtu - 3) throw new Error(`a notification of ${copy.length} bytes exceeds the ATT MTU of ${this.radio.mtu}`);
        this.radio.carry(link, "down", copy.length, () => {
          this.emit("read", peripheralUuid, serviceUuid, characteristicUuid, copy, true);
          characteristic.emit("notify");
        });
      });
    } else characteristic.emit("unsubscribe");
    setImmediate(() => this.emit("notify", peripheralUuid, serviceUuid, characteristicUuid, enable));
  }

  discoverDescriptors(peripheralUuid: string, serviceUuid: string, characteristicUuid: string): void {
    setImmediate(() => this.emit("descriptorsDiscover", peripheralUuid, serviceUuid, characteristicUuid, []));
  }
}

/** bleno's view of the radio: what bleno's main file binds as its hci-socket bindings. */
export class SimBlenoBindings extends EventEmitter {
  advertising?: { name: string; serviceUuids: string[] };
  services: Service[] = [];
  private central?: string;

  constructor(
    private readonly radio: SimRadio,
    readonly address: string,
  ) {
    super();
  }

  init(): void {
    setImmediate(() => {
      this.emit("platform", "linux");
      this.emit("addressChange", this.address);
      this.emit("stateChange", "poweredOn");
    });
  }

  startAdvertising(name: string, serviceUuids: string[] = []): void {
    this.advertising = { name, serviceUuids };
    setImmediate(() => this.emit("advertisingStart", null));
  }

  startAdvertisingWithEIRData(): void {
    setImmediate(() => this.emit("advertisingStart", new Error("raw EIR advertising is not simulated")));
  }

  startAdvertisingIBeacon(): void {
    setImmediate(() => this.emit("advertisingStart", new Error("iBeacon is not simulated")));
  }

  stopAdvertising(): void {
    this.advertising = undefined;
    setImmediate(() => this.emit("advertisingStop"));
  }

  setServices(services: Service[]): void {
    this.services = services;
    setImmediate(() => this.emit("servicesSet", null));
  }

  disconnect(): void {
    const link = this.radio.linkOf(this);
    if (link) this.radio.close(link, 0x16);
  }

  updateRssi(): void {
    setImmediate(() => this.emit("rssiUpdate", -50));
  }

  /** @internal the radio: a central connected. */
  centralArrived(address: string, mtu: number): void {
    this.central = address;
    this.emit("accept", address);
    this.emit("mtuChange", mtu);
  }

  /** @internal the radio: the central's link is gone; subscriptions end with it. */
  centralLeft(address: string): void {
    if (this.central !== address) return;
    this.central = undefined;
    for (const service of this.services) for (const characteristic of service.characteristics) characteristic.emit("unsubscribe");
    this.emit("disconnect", address);
  }
}
