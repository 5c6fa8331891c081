import type { Database } from "../storage/database";
import { deviceIdOf, deviceKeyFromSpki } from "../identity";

/** In a _local document: it never replicates, and no peer can reach it. */
const KEYS_DOC = "_local/peer-mesh-peer-keys";
/** Keys kept at most (known and paired peers only are offered; this bounds a long-lived device's list). */
const MAX_KEYS = 5_000;

interface KeysDoc {
  _id: string;
  _rev?: string;
  keys: Record<string, string>;
}

/**
 * The public keys of this device's peers, as handshakes proved them (a device id is its key's hash, so
 * nothing else can be slipped in). Private discovery derives each pair's beacon secret from them; kept
 * with the device's storage so that a restart does not fall back to the ids-only secret.
 */
export class KeyBook {
  private readonly keys = new Map<string, Buffer>();
  private db?: Database;
  private saving: Promise<unknown> = Promise.resolve();
  private dirty = false;

  constructor(private readonly wanted: (id: string) => boolean) {}

  async load(db: Database): Promise<void> {
    this.db = db;
    const doc = await db.get<KeysDoc>(KEYS_DOC).catch(() => undefined);
    for (const [id, key] of Object.entries(doc?.keys ?? {})) this.take(id, Buffer.from(key, "base64"));
  }

  keyOf(id: string): Buffer | undefined {
    return this.keys.get(id);
  }

  /** A key a handshake proved for `id` (the id derived from this very key); kept when `id` is a peer this device wants keys of. */
  learn(id: string, spki: Buffer): void {
    if (!this.wanted(id) || this.keys.get(id)?.equals(spki)) return;
    this.keep(id, spki);
    this.persist();
  }

  /** A key read back from storage: checked against its id before it is kept. */
  private take(id: string, spki: Buffer): boolean {
    try {
      if (deviceIdOf(deviceKeyFromSpki(spki)) !== id) return false;
    } catch {
      return false;
    }
    this.keep(id, spki);
    return true;
  }

  private keep(id: string, spki: Buffer): void {
    this.keys.delete(id);
    this.keys.set(id, spki);
    while (this.keys.size > MAX_KEYS) this.keys.delete(this.keys.keys().next().value as string);
  }

  /** Coalesced: a burst of new keys is one write of the latest list. */
  private persist(): void {
    if (!this.db || this.dirty) return;
    this.dirty = true;
    const db = this.db;
    this.saving = this.saving
      .then(async () => {
        this.dirty = false;
        const existing = await db.get<KeysDoc>(KEYS_DOC).catch(() => undefined);
        const keys = Object.fromEntries([...this.keys].map(([id, key]) => [id, key.toString("base64")]));
        await db.put<KeysDoc>({ _id: KEYS_DOC, _rev: existing?._rev, keys });
      })
      .catch(() => undefined);
  }

  /** Resolves once the last write has finished (before the database closes). */
  flushed(): Promise<unknown> {
    return this.saving;
  }
}
