/**
 * When an onion service's new descriptor is at every directory tor sent it to. tor uploads each
 * descriptor (two: this time period's and the next's) to several directories at once and reports each
 * upload ("HS_DESC UPLOAD"), then each answer ("HS_DESC UPLOADED", or "HS_DESC FAILED"). The first answer
 * is not enough: a client that asks a directory still holding the descriptor before (which may not admit
 * it: a pairing guest) fails, with tor's SOCKS "general failure" and nothing better.
 */
export class DescriptorUploads {
  /** Uploads announced and not answered yet, by directory (one directory takes both descriptors). */
  private readonly pending = new Map<string, number>();
  private uploaded = 0;

  constructor(private readonly serviceId: string) {}

  /** Feeds one event line; true once an upload succeeded and every one announced so far was answered. */
  onEvent(line: string): boolean {
    // "HS_DESC <action> <address> <auth type> <directory> …"
    const [kind, action, address, , directory] = line.split(" ");
    if (kind !== "HS_DESC" || address !== this.serviceId || !directory) return this.complete;
    if (action === "UPLOAD") {
      this.pending.set(directory, (this.pending.get(directory) ?? 0) + 1);
    } else if (action === "UPLOADED" || action === "FAILED") {
      const waiting = this.pending.get(directory);
      // An answer to an upload announced before this round began (the descriptor before) counts for nothing.
      if (waiting === undefined) return this.complete;
      if (waiting > 1) this.pending.set(directory, waiting - 1);
      else this.pending.delete(directory);
      if (action === "UPLOADED") this.uploaded += 1;
    }
    return this.complete;
  }

  /** Whether any directory took the descriptor (tor may never answer an upload whose connection died). */
  get anyUploaded(): boolean {
    return this.uploaded > 0;
  }

  private get complete(): boolean {
    return this.uploaded > 0 && this.pending.size === 0;
  }
}
