import net from "node:net";
import type { Duplex } from "node:stream";
import { isAddress } from "./peer-directory";

/** Splits "host:port" and "[v6]:port". */
export function splitAddress(address: string): { host: string; port: number } {
  if (!isAddress(address)) throw new Error(`"${address}" is not host:port`);
  const at = address.lastIndexOf(":");
  return { host: address.slice(0, at).replace(/^\[(.*)\]$/, "$1"), port: Number(address.slice(at + 1)) };
}

/** connect() of the transports whose addresses are host:port. */
export function dialTcp(address: string): Duplex {
  return net.connect(splitAddress(address));
}
