export { PeerDirectory, validateKnownPeers, type KnownPeer } from "./peer-directory";
export { PeerTable, DEFAULT_MAX_PEERS, type PeerInfo, type PeerTableEvents, type PeerTableOptions } from "./peer-table";
export { RANK, type DialEntry, type Sighting, type Transport, type TransportEvents } from "./transport";
export { StaticTransport, probeDevice, DEFAULT_PROBE_INTERVAL_MS, type StaticEntry, type StaticTransportOptions } from "./static-transport";
export { MdnsTransport, SERVICE_TYPE, DEFAULT_ANNOUNCE_INTERVAL_MS, DEFAULT_EXPIRE_MS, interfaceAddress, type MdnsTransportOptions } from "./mdns-transport";
export { PeerView, type PeerFilter } from "./peer-view";
export { dialTcp } from "./tcp";
