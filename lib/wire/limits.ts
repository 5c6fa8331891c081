export interface WireLimits {
  /** Largest message body; a larger one is answered 413. */
  maxMessageBytes: number;
  /** A stream that sends nothing for this long is reset. */
  streamIdleMs: number;
  /** Concurrent requests on one connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS). */
  maxConcurrentStreams: number;
  /** Connections the listener keeps open at once; more are refused. */
  maxConnections: number;
  /** Largest CouchDB-protocol request body (a replication batch with its attachments). */
  maxDatabaseRequestBytes: number;
  /** Message ids remembered per listener to drop retransmitted duplicates. */
  rememberedMessageIds: number;
  /** A connection of a peer with some permission is closed after this long with no request (past the client's own idle close). */
  idleSessionMs: number;
  /** A connection of a device no rule allows anything (only pairing is open to it) is closed after this long idle. */
  strangerSessionMs: number;
  /** Connections of such devices at once, in all and from one address: they never crowd out known peers. */
  maxStrangerSessions: number;
  maxStrangerSessionsPerAddress: number;
  /** TCP connections from one address at once (before TLS says who it is). */
  maxConnectionsPerAddress: number;
  /** A TLS handshake not finished in this time is dropped. */
  handshakeTimeoutMs: number;
  /** Bytes of unfinished request bodies held in memory for one peer, and for all together. */
  maxPendingBytesPerPeer: number;
  maxPendingBytes: number;
}

export const DEFAULT_LIMITS: WireLimits = {
  maxMessageBytes: 16 * 1024 * 1024,
  streamIdleMs: 30_000,
  maxConcurrentStreams: 128,
  // A gateway holds 1,000 peers (the gateway benchmark: about 87 KB of RSS each when idle).
  maxConnections: 1_100,
  rememberedMessageIds: 10_000,
  maxDatabaseRequestBytes: 64 * 1024 * 1024,
  idleSessionMs: 120_000,
  strangerSessionMs: 5_000,
  maxStrangerSessions: 32,
  maxStrangerSessionsPerAddress: 4,
  maxConnectionsPerAddress: 64,
  handshakeTimeoutMs: 10_000,
  maxPendingBytesPerPeer: 80 * 1024 * 1024,
  maxPendingBytes: 192 * 1024 * 1024,
};

/**
 * HTTP/2 settings for both ends: a 1 MiB stream window instead of 64 KiB keeps a stream moving on a
 * loopback or LAN round trip. (64 KiB frames were tried and measured no faster.)
 */
export const FLOW_SETTINGS = { initialWindowSize: 1024 * 1024 };

/**
 * The connection's own receive window (HTTP/2 keeps one beside each stream's, 64 KiB unless raised),
 * given to the devices this one dials and to known peers, not to strangers. At 64 KiB it held a stream
 * to about half a bare TLS socket's rate whatever the stream's window. It bounds what a peer may have in
 * flight on one connection and not yet read here.
 */
export const CONNECTION_WINDOW_BYTES = 2 * 1024 * 1024;
