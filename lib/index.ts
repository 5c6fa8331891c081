export * from "./identity";
export * from "./wire";
export * from "./discovery";
export { Device, type DeviceOptions, type DiscoveryOptions, type PendingPairing, type PeerRef, type ReceivedMessage, type ReceivedStream, type MessageListener, type StreamListener } from "./device";
export { SequenceStream } from "./streams/sequence-stream";
export { Rechunker } from "./streams/rechunker";
export { OutgoingSequences } from "./streams/outgoing-sequences";
export * from "./acl";
export { openDatabase, type Database } from "./storage/database";
