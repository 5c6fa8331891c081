export { WireServer, type IncomingMessage, type IncomingStream, type Receiver, type Refusal, type RefusalKind, type WireServerOptions } from "./server";
export { ClientPool, DEFAULT_REPLY_WITHIN_MS, type Answer, type PeerEndpoint, type ClientPoolOptions, type RequestOptions, type SendOptions, type StreamOptions } from "./client-pool";
export { DEFAULT_LIMITS, type WireLimits } from "./limits";
export { TopicSubscriptions } from "./subscriptions";
export { encodePayload, decodePayload } from "./payload";
export { newMessageId } from "./message-ids";
export { serverNameFor, isServerNameFor } from "./server-name";
