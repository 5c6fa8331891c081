import net from "node:net";
import type { Duplex } from "node:stream";
import { splitAddress } from "../protocol/address";

/** connect() of the transports whose addresses are host:port. */
export function dialTcp(address: string): Duplex {
  return net.connect(splitAddress(address));
}
