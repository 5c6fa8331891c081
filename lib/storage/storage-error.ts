import { isStorageFull } from "./database";

/**
 * A device's storage that cannot be used: locked by another process, damaged, or on a full disk. Says
 * which directory and what to do; the device goes on without it (messages and streams need no storage).
 */
export class StorageError extends Error {
  readonly code = "STORAGE_UNAVAILABLE";

  constructor(
    message: string,
    readonly directory: string,
    readonly reason: string,
  ) {
    super(message);
    this.name = "StorageError";
  }
}

/** LevelDB's own words for a directory that another process holds, or whose files are damaged. */
const LOCKED = /lock .*(Resource temporarily unavailable|already held|held by)/i;
const DAMAGED = /Corruption|CURRENT|MANIFEST|No such file|bad (magic|block)|checksum|not an sstable|truncated/i;

export function describeStorageError(err: unknown, directory: string): StorageError {
  if (err instanceof StorageError) return err;
  const reason = String((err as Error)?.message ?? err);
  if (LOCKED.test(reason)) {
    return new StorageError(`the storage at ${directory} is in use by another process (a second Node-RED with the same user directory?): stop that process, or give each Node-RED its own user directory`, directory, reason);
  }
  if (isStorageFull(err)) return new StorageError(`the disk holding ${directory} is full: free some space and restart the flow`, directory, reason);
  if (DAMAGED.test(reason)) {
    return new StorageError(`the database at ${directory} is damaged (${reason}): move that directory aside (the identity starts with an empty one there) or restore it from a backup, then restart the flow`, directory, reason);
  }
  return new StorageError(`the storage at ${directory} cannot be opened (${reason})`, directory, reason);
}
