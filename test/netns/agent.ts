/**
 * Runs one Device inside a test namespace, driven by the parent test over IPC (see host-device.ts).
 * Only ever started by the netns harness, so its mDNS stays on the namespace's test interface.
 */
import { Device, Identity, KnownPeer, PeerInfo } from "../../lib";

interface StartCommand {
  type: "start";
  bundlePem: string;
  name: string;
  peers: KnownPeer[];
  mdns: { interface: string; announceIntervalMs?: number; expireMs?: number };
}
interface SendCommand {
  type: "send";
  ref: number;
  to: string;
  topic: string;
  payload: unknown;
}
type Command = StartCommand | SendCommand | { type: "stop" };

let device: Device | undefined;
const tell = (message: object): void => void process.send?.({ ...message, at: Date.now() });

async function handle(command: Command): Promise<void> {
  switch (command.type) {
    case "start": {
      device = new Device({
        identity: Identity.fromBundlePem(command.bundlePem),
        name: command.name,
        host: "0.0.0.0",
        peers: command.peers,
        discovery: { mdns: command.mdns },
      });
      for (const event of ["found", "lost", "changed"] as const) {
        device.peerTable.on(event, (peer: PeerInfo) => tell({ type: "peer", event, peer }));
      }
      device.on("warning", (err, transport) => tell({ type: "warning", transport, message: err.message }));
      device.onMessage("#", (message) => tell({ type: "message", from: message.from.id, topic: message.topic, payload: message.payload }));
      const port = await device.start();
      tell({ type: "ready", id: device.id, port });
      return;
    }
    case "send":
      try {
        const ack = await device!.send(command.to, command.topic, command.payload);
        tell({ type: "sent", ref: command.ref, ack });
      } catch (err) {
        tell({ type: "sent", ref: command.ref, error: { code: (err as { code?: string }).code, message: (err as Error).message } });
      }
      return;
    case "stop":
      await device?.stop();
      tell({ type: "stopped" });
      process.disconnect?.();
      return;
  }
}

process.on("message", (command: Command) => {
  handle(command).catch((err: Error) => tell({ type: "failed", message: err.stack ?? err.message }));
});
// The parent going away ends the agent too: nothing outlives the test.
process.on("disconnect", () => setTimeout(() => process.exit(0), 100).unref());
