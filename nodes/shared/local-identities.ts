import type { Device } from "../../lib";

/**
 * Identities running in this Node-RED that share a "simulated network" name trust each other: the example
 * flows simulate several devices in one runtime, and their keys are made at deploy, so no flow file can
 * name them in advance. Each member learns the others' ids, names and loopback addresses once they listen.
 * The name keeps two simulations (say, the factory and the home examples) apart.
 */
interface Member {
  network: string;
  device: Device;
  name?: string;
  host: string;
  port: number;
}

const members = new Map<string, Member>();

function loopbackAddress(member: Member): string {
  const local = ["0.0.0.0", "::", "127.0.0.1", "localhost", ""].includes(member.host);
  const host = local ? "127.0.0.1" : member.host.includes(":") ? `[${member.host}]` : member.host;
  return `${host}:${member.port}`;
}

function introduce(to: Member, other: Member): void {
  if (to.device === other.device || to.network !== other.network) return;
  to.device.addKnownPeer({ id: other.device.id, name: other.name, address: loopbackAddress(other) });
}

/** Registers a started identity (under its config node id); returns what removes it again. */
export function joinLocalIdentities(nodeId: string, member: Member): () => void {
  members.set(nodeId, member);
  for (const [otherId, other] of members) {
    if (otherId === nodeId) continue;
    introduce(member, other);
    introduce(other, member);
  }
  return () => {
    if (members.get(nodeId) === member) members.delete(nodeId);
  };
}
