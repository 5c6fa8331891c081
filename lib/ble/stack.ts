import type { EventEmitter } from "node:events";

/**
 * The parts of @abandonware/noble (central) and @abandonware/bleno (peripheral) the BLE transport uses.
 * Both are optional dependencies, loaded only when BLE is turned on: they need a Bluetooth adapter and
 * fail to load without one (EAFNOSUPPORT on this build machine).
 */
export interface NobleCharacteristic extends EventEmitter {
  uuid: string;
  read(callback: (err: Error | null, data?: Buffer) => void): void;
  write(data: Buffer, withoutResponse: boolean, callback: (err?: Error | null) => void): void;
  subscribe(callback: (err?: Error | null) => void): void;
}

export interface NoblePeripheral extends EventEmitter {
  uuid: string;
  state: string;
  mtu?: number | null;
  advertisement: { localName?: string; serviceUuids?: string[] };
  connect(callback: (err?: Error | null) => void): void;
  disconnect(callback?: () => void): void;
  discoverSomeServicesAndCharacteristics(serviceUuids: string[], characteristicUuids: string[], callback: (err: Error | null, services: unknown[], characteristics: NobleCharacteristic[]) => void): void;
}

export interface Noble extends EventEmitter {
  state: string;
  startScanning(serviceUuids: string[], allowDuplicates: boolean, callback?: (err?: Error | null) => void): void;
  stopScanning(callback?: () => void): void;
}

export interface BlenoCharacteristicOptions {
  uuid: string;
  properties: string[];
  onReadRequest?: (offset: number, callback: (result: number, data?: Buffer) => void) => void;
  onWriteRequest?: (data: Buffer, offset: number, withoutResponse: boolean, callback: (result: number) => void) => void;
  onSubscribe?: (maxValueSize: number, updateValueCallback: (data: Buffer) => void) => void;
  onUnsubscribe?: () => void;
  onNotify?: () => void;
}

export interface Bleno extends EventEmitter {
  state: string;
  mtu: number;
  startAdvertising(name: string, serviceUuids: string[], callback?: (err?: Error | null) => void): void;
  stopAdvertising(callback?: () => void): void;
  setServices(services: unknown[], callback?: (err?: Error | null) => void): void;
  disconnect(): void;
  PrimaryService: new (options: { uuid: string; characteristics: unknown[] }) => unknown;
  Characteristic: new (options: BlenoCharacteristicOptions) => unknown;
}

/** What a test or an embedding can hand the transport instead of a real adapter: binding objects for both stacks. */
export interface BleBindings {
  noble: object;
  bleno: object;
}

export interface BleStack {
  noble: Noble;
  bleno: Bleno;
}

// Not `import`: the packages are optional, and a missing one must become "unavailable", not a crash at load.
const load = (id: string): unknown => require(id);

/**
 * noble and bleno on the machine's adapter, or on the given bindings. noble takes bindings through its
 * own `with-bindings` entry. bleno has no such entry: it binds the HCI socket module when its main file
 * loads, so that module is put in the require cache first and bleno's main file loaded fresh for each
 * stack (the same seam, one level down; bleno's own code runs unchanged on top of it).
 */
export function loadBleStack(bindings?: BleBindings): BleStack {
  if (!bindings) {
    return { noble: load("@abandonware/noble") as Noble, bleno: load("@abandonware/bleno") as Bleno };
  }
  const noble = (load("@abandonware/noble/with-bindings") as (bindings: object) => Noble)(bindings.noble);
  const hciBindings = require.resolve("@abandonware/bleno/lib/hci-socket/bindings");
  const blenoMain = require.resolve("@abandonware/bleno/lib/bleno");
  const saved = { hci: require.cache[hciBindings], main: require.cache[blenoMain] };
  try {
    require.cache[hciBindings] = { id: hciBindings, filename: hciBindings, loaded: true, exports: bindings.bleno } as NodeJS.Module;
    delete require.cache[blenoMain];
    const BlenoClass = load(blenoMain) as new () => Bleno;
    return { noble, bleno: new BlenoClass() };
  } finally {
    if (saved.hci) require.cache[hciBindings] = saved.hci;
    else delete require.cache[hciBindings];
    if (saved.main) require.cache[blenoMain] = saved.main;
    else delete require.cache[blenoMain];
  }
}
