/** The part of leveldown (the LevelDB binding under PouchDB's LevelDB adapter) this project uses. */
declare module "leveldown" {
  interface LevelDown {
    /** "new", "opening", "open", "closing" or "closed". */
    readonly status: string;
    /** A LevelDB property, such as "leveldb.approximate-memory-usage" (bytes, as text). */
    getProperty(property: string): string;
    /** An iterator over every key; it holds the tables it reads from on disk until it ends. */
    iterator(): { next(callback: (err?: Error | null) => void): void; end(callback: (err?: Error) => void): void };
    /** Compacts the keys from start to end: deleted entries leave the files. */
    compactRange(start: Buffer, end: Buffer, callback: (err?: Error) => void): void;
  }
  interface LevelDownFactory {
    (location: string): LevelDown;
    destroy(location: string, callback: (err?: Error) => void): void;
  }
  const leveldown: LevelDownFactory;
  export = leveldown;
}
