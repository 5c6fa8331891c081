import type { PendingPairing } from "../acl/pending-pairings";
import type { TorStatus } from "../tor/tor-transport";
import type { Refusal } from "../wire/server";
import type { KeyChange } from "./key-changes";

/** What a device tells its users (the identity-config node, the sidebar). */
export interface DeviceEvents {
  /** Someone asked to pair, or this device asked someone: the users compare `sas` and confirm. */
  pairing: [request: PendingPairing];
  refused: [info: Refusal];
  /** A group document failed verification (tampered, unsigned, replayed older version). */
  rejected: [info: { id: string; reason: string }];
  /** A transport hit something worth telling the user that did not stop it. */
  warning: [err: Error, transport: string];
  /** A replication session with `peer` (or the cloud) finished without an error. */
  synced: [peer: string, at: number];
  /** A peer's write to `database` failed because this device's disk is full (the peer was told 507). */
  "storage-full": [database: string, err: Error];
  /**
   * Another key answered at a known peer's address (`restored` false), or the peer's own key answers
   * there again (`restored` true). The other key is never trusted for the peer.
   */
  "key-changed": [change: KeyChange, restored: boolean];
  /** A peer moved to a new key and this device follows it (its statement verified): `from` is refused from now on. */
  rotated: [info: { from: string; to: string; name?: string }];
  /** Tor's bootstrap progress, this device's onion address, or a failure changed. */
  tor: [status: TorStatus];
}
