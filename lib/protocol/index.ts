export { WireError, wireErrorFromResponse, type WireErrorCode } from "./errors";
export { MAX_REPLY_BYTES, MAX_REPLY_WAIT_MS, type Ack, type Authorizer, type Verb } from "./wire";
export { topicMatches, validatePattern, validateTopic } from "./topic";
export { isAddress, splitAddress, joinAddress, isOnionAddress, isOnionHostPort, ONION_PORT } from "./address";
export { CLOUD_PEER, MESSAGE_DOC_PREFIX, ACK_DOC_PREFIX, DEVICE_DOC_PREFIX, GROUP_DOC_PREFIX } from "./doc-ids";
export { type CouchRequest, type CouchReply, type CouchAccess, type BulkResult, type RefusalCode } from "./couch";
