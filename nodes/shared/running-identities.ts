import { EventEmitter } from "node:events";
import type { Device } from "../../lib";

export interface RunningIdentity {
  /** The identity-config node's id in the flows. */
  nodeId: string;
  name?: string;
  device: Device;
}

/**
 * The identities deployed in this Node-RED right now, for the editor's peer mesh sidebar (a plugin,
 * loaded apart from the nodes, that shares this module). "change" fires when one starts or stops.
 */
class RunningIdentities extends EventEmitter<{ change: [] }> {
  private readonly byNode = new Map<string, RunningIdentity>();

  add(identity: RunningIdentity): () => void {
    this.byNode.set(identity.nodeId, identity);
    this.emit("change");
    return () => {
      if (this.byNode.get(identity.nodeId) !== identity) return;
      this.byNode.delete(identity.nodeId);
      this.emit("change");
    };
  }

  list(): RunningIdentity[] {
    return [...this.byNode.values()];
  }
}

export const runningIdentities = new RunningIdentities();
