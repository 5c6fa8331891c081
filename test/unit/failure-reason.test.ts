import type { NodeAPI } from "node-red";
import should from "should";
import { WireError } from "../../lib";
import { wireErrorFromResponse } from "../../lib/protocol/errors";
import { failureCode, failureReason } from "../../nodes/shared/identity-node";

/** RED._ as the helper gives it: the message key itself. */
const RED = { _: (key: string) => key } as unknown as NodeAPI;

describe("failure reasons in status badges", () => {
  it("tells the peer's full disk (a 507 answer) from this device's (LevelDB's IO error), and both are STORAGE_FULL to a flow", () => {
    const peers = wireErrorFromResponse(507, "insufficient_storage", "the peer's storage is full");
    should(peers.code).equal("STORAGE_FULL");
    should(failureReason(RED, peers)).equal("peer-mesh.reasons.peer-storage-full");
    should(failureReason(RED, { status: 507, name: "insufficient_storage", message: "full" })).equal("peer-mesh.reasons.peer-storage-full");
    const own = new Error("IO error: /data/peer-mesh/x/databases/readings/000003.log: No space left on device");
    should(failureReason(RED, own)).equal("peer-mesh.reasons.storage-full");
    should(failureCode(own)).equal("STORAGE_FULL");
    should(failureCode(peers)).equal("STORAGE_FULL");
  });

  it("gives other wire codes as words, and 'failed' for anything else", () => {
    should(failureReason(RED, new WireError("UNREACHABLE", "no route"))).equal("unreachable");
    should(failureCode(new WireError("UNREACHABLE", "no route"))).equal("UNREACHABLE");
    should(failureReason(RED, new Error("something odd"))).equal("peer-mesh.reasons.failed");
    should(failureCode(new Error("something odd"))).be.undefined();
    should(failureReason(RED, undefined)).equal("peer-mesh.reasons.failed");
  });
});
