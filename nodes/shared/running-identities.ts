import { EventEmitter } from "node:events";
import { joinAddress, type Device } from "../../lib";

export interface RunningIdentity {
  /** The identity-config node's id in the flows. */
  nodeId: string;
  name?: string;
  device: Device;
  /** Where it listens. */
  host: string;
  port: number;
  /** The "simulated network" it joins (identities of this runtime that trust each other), if any. */
  network?: string;
}

/**
 * The identities deployed in this Node-RED right now: for the editor's peer mesh sidebar (a plugin,
 * loaded apart from the nodes, that shares this module) and for simulated networks. "change" fires when
 * one starts or stops.
 */
class RunningIdentities extends EventEmitter<{ change: [] }> {
  private readonly byNode = new Map<string, RunningIdentity>();

  add(identity: RunningIdentity): () => void {
    this.byNode.set(identity.nodeId, identity);
    for (const other of this.byNode.values()) {
      introduce(identity, other);
      introduce(other, identity);
    }
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

/**
 * Identities that give the same simulated network name trust each other: the example flows simulate
 * several devices in one runtime, and their keys are made at deploy, so no flow file can name them in
 * advance. Each learns the others' ids, names and loopback addresses once they listen; the name keeps
 * two simulations (say, the factory and the home examples) apart.
 */
function introduce(to: RunningIdentity, other: RunningIdentity): void {
  if (to.device === other.device || !to.network || to.network !== other.network) return;
  to.device.addKnownPeer({ id: other.device.id, name: other.name, address: loopbackAddress(other) });
}

function loopbackAddress(identity: RunningIdentity): string {
  const local = ["0.0.0.0", "::", "127.0.0.1", "localhost", ""].includes(identity.host);
  return joinAddress(local ? "127.0.0.1" : identity.host, identity.port);
}
