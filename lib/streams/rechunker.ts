/** Cuts a byte stream into pieces of exactly `size` bytes (the last may be shorter, see flush). */
export class Rechunker {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly size: number) {}

  push(chunk: Buffer): Buffer[] {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes < this.size) return [];
    const all = Buffer.concat(this.pending, this.pendingBytes);
    const pieces: Buffer[] = [];
    let offset = 0;
    for (; all.length - offset >= this.size; offset += this.size) pieces.push(all.subarray(offset, offset + this.size));
    this.pending = offset < all.length ? [all.subarray(offset)] : [];
    this.pendingBytes = all.length - offset;
    return pieces;
  }

  /** What is left (possibly empty). */
  flush(): Buffer {
    const rest = Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    return rest;
  }
}
