export * from "./identity";
export * from "./wire";
export { PeerDirectory, validateKnownPeers, isAddress, type KnownPeer } from "./discovery/peer-directory";
export { Device, type DeviceOptions, type PeerRef, type ReceivedMessage, type ReceivedStream, type MessageListener, type StreamListener } from "./device";
export { SequenceStream } from "./streams/sequence-stream";
export { Rechunker } from "./streams/rechunker";
export { OutgoingSequences } from "./streams/outgoing-sequences";
