export { WireServer, type IncomingMessage, type IncomingStream, type Receiver, type WireServerOptions } from "./server";
export { ClientPool, type PeerEndpoint, type ClientPoolOptions, type SendOptions, type StreamOptions } from "./client-pool";
export { DEFAULT_LIMITS, type WireLimits } from "./limits";
export { TopicSubscriptions } from "./subscriptions";
export { encodePayload, decodePayload } from "./payload";
