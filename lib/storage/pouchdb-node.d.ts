/**
 * The part of PouchDB this project uses, typed here because @types/pouchdb-core pulls the DOM library
 * into every file of the build (it references lib "dom"), which breaks node:crypto's Buffer types.
 */
declare module "pouchdb-node" {
  namespace PouchDB {
    interface Meta {
      _id: string;
      _rev: string;
      _conflicts?: string[];
      _deleted?: boolean;
    }
    type Existing<T> = T & Meta;
    interface Response {
      ok: boolean;
      id: string;
      rev: string;
    }
    interface Change<T> {
      id: string;
      seq: number | string;
      deleted?: boolean;
      changes: Array<{ rev: string }>;
      doc?: Existing<T>;
    }
    interface ChangesOptions {
      since?: number | string | "now";
      style?: "main_only" | "all_docs";
      descending?: boolean;
      return_docs?: boolean;
      batch_size?: number;
      live?: boolean;
      include_docs?: boolean;
      conflicts?: boolean;
      limit?: number;
      filter?: string | ((doc: object) => boolean);
      doc_ids?: string[];
    }
    interface Changes<T> {
      on(event: "change", listener: (change: Change<T>) => void): this;
      on(event: "complete", listener: (info: { results: Array<Change<T>>; last_seq: number | string }) => void): this;
      on(event: "error", listener: (err: Error) => void): this;
      cancel(): void;
    }
    interface AllDocsOptions {
      startkey?: string;
      endkey?: string;
      keys?: string[];
      include_docs?: boolean;
      conflicts?: boolean;
      limit?: number;
      skip?: number;
      descending?: boolean;
    }
    interface AllDocsResponse<T> {
      total_rows: number;
      offset: number;
      rows: Array<{ id: string; key: string; value: { rev: string; deleted?: boolean }; doc?: Existing<T> }>;
    }
    interface ReplicateOptions {
      live?: boolean;
      retry?: boolean;
      doc_ids?: string[];
      checkpoint?: false | "source" | "target";
      batch_size?: number;
      batches_limit?: number;
      filter?: (doc: Existing<object>) => boolean;
      back_off_function?: (delay: number) => number;
    }
    interface ReplicationResult {
      ok: boolean;
      docs_read: number;
      docs_written: number;
      doc_write_failures: number;
      errors: Array<{ id?: string; name?: string; reason?: string; message?: string }>;
      status?: string;
    }
    interface Replication extends Promise<ReplicationResult> {
      on(event: "change", listener: (info: ReplicationResult & { docs: Array<Existing<object>> }) => void): this;
      on(event: "denied", listener: (err: { id?: string; reason?: string; message?: string }) => void): this;
      on(event: "paused" | "active", listener: (err?: Error) => void): this;
      on(event: "complete", listener: (info: ReplicationResult) => void): this;
      on(event: "error", listener: (err: Error) => void): this;
      cancel(): void;
    }
    /** What PouchDB's HTTP adapter passes to a custom fetch: node-fetch's Headers, a string or binary body. */
    interface FetchInit {
      method?: string;
      headers?: { forEach(callback: (value: string, name: string) => void): void };
      body?: string | Uint8Array | { arrayBuffer(): Promise<ArrayBuffer> };
      signal?: AbortSignal;
    }
    interface Info {
      db_name: string;
      doc_count: number;
      update_seq: number | string;
    }
    interface Database<Content extends object = object> {
      readonly name: string;
      get<T extends object = Content>(id: string, options?: { rev?: string; conflicts?: boolean; revs?: boolean; attachments?: boolean; binary?: boolean }): Promise<Existing<T>>;
      put<T extends object>(doc: T & { _id: string; _rev?: string }, options?: { force?: boolean }): Promise<Response>;
      post<T extends object>(doc: T): Promise<Response>;
      remove(doc: { _id: string; _rev: string }): Promise<Response>;
      bulkDocs<T extends object>(docs: Array<T & { _id?: string; _rev?: string }> | { docs: Array<T & { _id?: string; _rev?: string }>; new_edits?: boolean }, options?: { new_edits?: boolean }): Promise<Array<Response | { error: string; reason: string; id: string; status?: number }>>;
      allDocs<T extends object = Content>(options?: AllDocsOptions): Promise<AllDocsResponse<T>>;
      changes<T extends object = Content>(options?: ChangesOptions): Changes<T> & Promise<{ results: Array<Change<T>>; last_seq: number | string }>;
      revsDiff(diff: Record<string, string[]>): Promise<Record<string, { missing: string[]; possible_ancestors?: string[] }>>;
      bulkGet(options: { docs: Array<{ id: string; rev?: string }>; revs?: boolean; attachments?: boolean; latest?: boolean; binary?: boolean }): Promise<{ results: Array<{ id: string; docs: Array<{ ok?: Existing<object>; error?: { id: string; rev: string; error: string; reason: string } }> }> }>;
      getAttachment(docId: string, attachmentId: string, options?: { rev?: string }): Promise<Buffer>;
      /** All leaf revisions asked for by `open_revs`. */
      get(id: string, options: { open_revs: string[] | "all"; revs?: boolean; attachments?: boolean; latest?: boolean }): Promise<Array<{ ok?: Existing<object>; missing?: string }>>;
      info(): Promise<Info>;
      /** Drops the bodies (and attachments) of revisions that are no longer leaves, for the documents changed since the last compaction. */
      compact(): Promise<{ ok: boolean }>;
      close(): Promise<void>;
      /** PouchDB databases are EventEmitters. */
      setMaxListeners(count: number): this;
      destroy(): Promise<void>;
    }
  }
  interface PouchDBConstructor {
    /** One-shot replication (the result is also an event emitter, unused here). */
    replicate(source: PouchDB.Database | string, target: PouchDB.Database | string, options?: PouchDB.ReplicateOptions): PouchDB.Replication;
    new <Content extends object = object>(name: string, options?: { adapter?: string; prefix?: string; auth?: { username: string; password: string }; fetch?: (url: string, init: PouchDB.FetchInit) => Promise<globalThis.Response>; skip_setup?: boolean; /** Handed to LevelDB's open by the LevelDB adapter. */ cacheSize?: number; writeBufferSize?: number; maxOpenFiles?: number; /** The LevelDB binding to open it with (leveldown by default). */ db?: (location: string) => unknown }): PouchDB.Database<Content>;
  }
  const PouchDB: PouchDBConstructor;
  export = PouchDB;
}
