export { WireServer, type IncomingMessage, type IncomingStream, type Receiver, type WireServerOptions } from "./server";
export { ClientPool, type PeerEndpoint, type ClientPoolOptions, type SendOptions, type StreamOptions } from "./client-pool";
export { WireError, type WireErrorCode } from "./errors";
export { DEFAULT_LIMITS, type WireLimits } from "./limits";
export { type Ack, type Authorizer, type Verb } from "./protocol";
export { topicMatches, validatePattern, validateTopic } from "./topic";
export { TopicSubscriptions } from "./subscriptions";
export { encodePayload, decodePayload } from "./payload";
