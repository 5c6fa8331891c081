/**
 * The mesh-sync node's defaults, in the units its editor shows. One list: the library's Mesh and the
 * node read it, and a unit test holds the editor's copy (mesh-sync.html, which cannot import it) to it.
 */
export const MESH_SYNC_DEFAULTS = {
  /** Seconds between sync rounds; 0 syncs whenever something changes. */
  interval: 30,
  /** Mesh documents per session with one peer. */
  maxDocs: 100,
  /** Kilobytes of message bodies per session with one peer. */
  maxKb: 4096,
  /** A message's time to live, seconds. */
  ttl: 86_400,
  /** 0 (lowest) to 9. */
  priority: 4,
  /** Seconds before a directed message with no known path floods. */
  fallback: 60,
  /** The store-and-forward quota: messages and acks kept, and megabytes of them. */
  quotaDocs: 10_000,
  quotaMb: 256,
  /** Battery percentage under which syncing pauses. */
  minBattery: 20,
  /** The cloud server's database for mesh documents. */
  cloudDatabase: "peer-mesh",
} as const;

/** A battery or power report (msg.battery, msg.power) as a flow sends it. */
export interface PowerReading {
  battery?: number;
  power?: string;
}

/** Whether syncing should pause: power "low", or a battery under the threshold that is neither charging nor on mains. */
export function lowPower(reading: PowerReading, minBattery: number = MESH_SYNC_DEFAULTS.minBattery): boolean {
  if (reading.power === "low") return true;
  if (reading.battery === undefined || reading.power === "charging" || reading.power === "mains") return false;
  return reading.battery < minBattery;
}
