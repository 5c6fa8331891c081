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

export type MeshDocKind = "message" | "ack" | "device" | "group";

/** Which kind of mesh document an id names, from its prefix; undefined for anything else. */
export function meshDocKind(id: string): MeshDocKind | undefined {
  if (id.startsWith(MESSAGE_DOC_PREFIX)) return "message";
  if (id.startsWith(ACK_DOC_PREFIX)) return "ack";
  if (id.startsWith(DEVICE_DOC_PREFIX)) return "device";
  if (id.startsWith(GROUP_DOC_PREFIX)) return "group";
  return undefined;
}

/** The neighbour name mesh sync uses for the cloud CouchDB server (never a device id, which is 52 characters). */
export const CLOUD_PEER = "cloud";
