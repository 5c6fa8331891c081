import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from "node-red";
import { type Device, type KeyChange, PeerInfo, PeerView, type PendingPairing } from "../../lib";
import { shorten, useIdentity } from "../shared/identity-node";
import { ThrottledStatus } from "../shared/throttled-status";

interface PeerDiscoverDef extends NodeDef {
  identity?: string;
  /** Transport names to report; empty: all. */
  transports?: string[] | string;
  trustedOnly?: boolean;
}

/** What a flow gets for a peer: plain JSON, lastSeen in epoch milliseconds like Date.now(). */
function describe(peer: PeerInfo) {
  return { id: peer.id, name: peer.name, transports: peer.transports, address: peer.address, lastSeen: peer.lastSeen, trusted: peer.trusted, verified: peer.verified };
}

function transportList(value: PeerDiscoverDef["transports"]): string[] {
  const names = Array.isArray(value) ? value : typeof value === "string" ? value.split(",") : [];
  return names.map((name) => String(name).trim()).filter(Boolean);
}

export = (RED: NodeAPI): void => {
  RED.nodes.registerType("peer-discover", function (this: Node, def: PeerDiscoverDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const { ready } = useIdentity(RED, node, def.identity);
    const status = new ThrottledStatus(node);
    let view: PeerView | undefined;
    let device: Device | undefined;
    let closed = false;
    let stopPairing = (): void => undefined;

    const showCount = (): void =>
      status.update(() => {
        const count = view?.size ?? 0;
        const missing = device?.unavailableTransports.map((transport) => transport.name).join(", ");
        // Asked for but not running (BLE without an adapter): yellow, so the user sees why nobody is found that way.
        if (missing) return { fill: "yellow", shape: "ring", text: RED._("peer-discover.status.unavailable", { count, transports: missing }) };
        // Another key at a known peer's address is worth more attention than a count.
        const changed = device?.keyChanges[0];
        if (changed) return { fill: "red", shape: "ring", text: shorten(RED._("peer-discover.status.key-changed", { peer: changed.name ?? changed.peerId.slice(0, 8) }), 60) };
        // Tor takes a while to bootstrap (or fails to): its progress, until it is ready.
        const tor = device?.torStatus;
        if (tor && tor.state === "failed") return { fill: "yellow", shape: "ring", text: shorten(RED._("peer-discover.status.tor-failed", { count, error: tor.error ?? "" }), 60) };
        if (tor && tor.state !== "ready") return { fill: "yellow", shape: "ring", text: RED._("peer-discover.status.tor-starting", { count, progress: tor.progress }) };
        return { fill: count > 0 ? "green" : "grey", shape: count > 0 ? "dot" : "ring", text: RED._("peer-discover.status.in-range", { count }) };
      });

    ready.then((running) => {
      if (closed) return;
      device = running;
      view = new PeerView(device.peerTable, { transports: transportList(def.transports), trustedOnly: def.trustedOnly === true });
      for (const event of ["found", "lost", "changed"] as const) {
        view.on(event, (peer) => {
          node.send({ topic: event, payload: describe(peer) });
          showCount();
        });
      }
      // Pairing requests go to the flow too, so a headless device can accept them (a physical button).
      const onPairing = (request: PendingPairing): void => {
        if (request.direction === "incoming") node.send({ topic: "pairing", payload: request });
      };
      // A known peer's address answering with another key: the flow hears of it (and of its end), never trusts it.
      const onKeyChanged = (change: KeyChange, restored: boolean): void => {
        node.send({ topic: restored ? "key-restored" : "key-changed", payload: change });
        if (!restored) node.warn(RED._("peer-discover.warnings.key-changed", { peer: change.name ?? change.peerId, address: change.address, other: change.answeredBy }));
        showCount();
      };
      running.on("pairing", onPairing);
      running.on("tor", showCount);
      running.on("key-changed", onKeyChanged);
      stopPairing = () => {
        running.off("pairing", onPairing);
        running.off("tor", showCount);
        running.off("key-changed", onKeyChanged);
      };
      for (const change of running.keyChanges) node.send({ topic: "key-changed", payload: change });
      // Peers already in range when this node starts (a partial deploy) are news to its flow.
      for (const peer of view.list()) node.send({ topic: "found", payload: describe(peer) });
      showCount();
    }, () => undefined); // useIdentity shows the reason in the status

    node.on("input", (msg: NodeMessageInFlow, send: (msg: NodeMessageInFlow) => void, done: (err?: Error) => void) => {
      ready
        .then(async (device) => {
          if (msg.topic === "pairing/open") {
            const seconds = Number((msg.payload as { seconds?: unknown } | undefined)?.seconds ?? 60);
            return void send({ ...msg, topic: "pairing/open", payload: device.pairing.openWindow(seconds * 1000) });
          }
          if (msg.topic === "pairing/accept" || msg.topic === "pairing/refuse") {
            const request = (msg.payload ?? {}) as { requestId?: unknown; group?: unknown; sas?: unknown };
            const requestId = String(request.requestId ?? "");
            if (msg.topic === "pairing/refuse") return void send({ ...msg, topic: "pairing/refused", payload: { requestId, removed: device.pairing.reject(requestId) } });
            const group = typeof request.group === "string" && request.group ? request.group : "paired";
            const paired = await device.pairing.confirm(requestId, { group, sas: typeof request.sas === "string" ? request.sas : undefined });
            return void send({ ...msg, topic: "paired", payload: { ...paired, group } });
          }
          send({ ...msg, topic: "peers", payload: (view?.list() ?? []).map(describe) });
        })
        .then(() => done(), (err: Error) => done(err));
    });

    node.on("close", (_removed: boolean, done: () => void) => {
      closed = true;
      view?.close();
      stopPairing();
      status.stop();
      done();
    });
  });
};
