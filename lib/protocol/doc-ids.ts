/**
 * The names shared by the mesh, its sync and the sidebar: document id prefixes of the mesh store and
 * the peer name that stands for a cloud CouchDB server.
 */

/** A sealed message for one device or a group: "msg:<uuid>". */
export const MESSAGE_DOC_PREFIX = "msg:";
/** A recipient's signed receipt: "ack:<message uuid>:<recipient id>". */
export const ACK_DOC_PREFIX = "ack:";
/** A device's signed document (its neighbours, name and onion address): "dev:<device id>". */
export const DEVICE_DOC_PREFIX = "dev:";

/** A group signed by its owner: "group:<owner id>:<name>". */
export const GROUP_DOC_PREFIX = "group:";

/** The neighbour name mesh sync uses for the cloud CouchDB server (never a device id, which is 52 characters). */
export const CLOUD_PEER = "cloud";
