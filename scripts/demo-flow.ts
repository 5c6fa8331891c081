import { Identity } from "../lib";

/**
 * The demo: two device identities in one runtime, a sensor box and a line gateway, exchanging messages and
 * a stream over mutual TLS on loopback. Keys are made here and deployed as credentials, exactly as the
 * editor would after the dialog generated them.
 */
export function demoFlow(options: { gatewayPort: number }): Array<Record<string, unknown>> {
  const sensor = Identity.generate({ name: "sensor box" });
  const gateway = Identity.generate({ name: "line gateway" });
  const tab = "demo-tab";
  return [
    { id: tab, type: "tab", label: "Peer mesh demo", info: "Two devices in one Node-RED, talking over mutual TLS on 127.0.0.1." },
    {
      id: "demo-sensor", type: "identity-config", name: "sensor box", deviceId: sensor.deviceId, host: "127.0.0.1", port: 0, mdns: false,
      peers: [{ id: gateway.deviceId, name: "gateway", address: `127.0.0.1:${options.gatewayPort}` }],
      credentials: { privateKey: sensor.privateKeyPem, certificate: sensor.certificatePem },
    },
    {
      id: "demo-gateway", type: "identity-config", name: "line gateway", deviceId: gateway.deviceId, host: "127.0.0.1", port: options.gatewayPort, mdns: false,
      peers: [{ id: sensor.deviceId, name: "sensor box", address: "" }],
      credentials: { privateKey: gateway.privateKeyPem, certificate: gateway.certificatePem },
    },
    {
      id: "demo-comment", type: "comment", z: tab, x: 200, y: 40, name: "Two devices, one runtime: read me",
      info: "The **sensor box** identity sends a temperature reading every 5 s to the **line gateway** identity, and a 1 MB camera frame as a stream when you press the inject button. Each identity has its own key pair; the gateway accepts only the sensor box's key. Watch the debug sidebar, then open an identity node to see its device id. The **peer discover** node reports the gateway as found (and lists the peers in range when you press *list peers*) once the sensor box's probe of its address succeeds (LAN discovery is off here, so nothing leaves this machine).",
    },
    { id: "demo-tick", type: "inject", z: tab, x: 130, y: 100, name: "every 5 s", props: [{ p: "payload" }], repeat: "5", once: true, onceDelay: "1", payload: "", payloadType: "date", wires: [["demo-reading"]] },
    {
      id: "demo-reading", type: "function", z: tab, x: 320, y: 100, name: "temperature reading",
      func: "msg.topic = 'factory/line-1/temperature';\nmsg.payload = { celsius: Math.round((60 + Math.random() * 30) * 10) / 10, at: new Date(msg.payload).toISOString() };\nreturn msg;",
      outputs: 1, wires: [["demo-send"]],
    },
    { id: "demo-send", type: "peer-send", z: tab, x: 540, y: 100, name: "to gateway", identity: "demo-sensor", peer: "gateway", topic: "", timeout: 10, partsAsStream: true, wires: [["demo-acks"]] },
    { id: "demo-acks", type: "debug", z: tab, x: 750, y: 100, name: "acknowledged", active: true, tosidebar: true, console: false, complete: "payload", targetType: "msg", statusVal: "", statusType: "auto", wires: [] },
    { id: "demo-receive", type: "peer-receive", z: tab, x: 150, y: 160, name: "temperatures", identity: "demo-gateway", topic: "factory/+/temperature", streamOutput: "chunks", chunkKb: 64, maxBufferMb: 64, wires: [["demo-received"]] },
    { id: "demo-received", type: "debug", z: tab, x: 380, y: 160, name: "at the gateway", active: true, tosidebar: true, console: false, complete: "true", targetType: "full", statusVal: "", statusType: "auto", wires: [] },
    { id: "demo-frame", type: "inject", z: tab, x: 130, y: 240, name: "send a 1 MB frame", props: [{ p: "payload" }], repeat: "", once: false, payload: "", payloadType: "date", wires: [["demo-image"]] },
    { id: "demo-image", type: "function", z: tab, x: 320, y: 240, name: "camera frame", func: "msg.topic = 'factory/line-1/camera';\nmsg.payload = Buffer.alloc(1024 * 1024, 0x5a);\nreturn msg;", outputs: 1, wires: [["demo-split"]] },
    { id: "demo-split", type: "split", z: tab, x: 490, y: 240, name: "64 KiB parts", splt: "65536", spltType: "len", arraySplt: 1, arraySpltType: "len", stream: false, addname: "", wires: [["demo-send-stream"]] },
    { id: "demo-send-stream", type: "peer-send", z: tab, x: 660, y: 240, name: "stream to gateway", identity: "demo-sensor", peer: "gateway", topic: "", timeout: 10, partsAsStream: true, wires: [["demo-acks"]] },
    { id: "demo-receive-frames", type: "peer-receive", z: tab, x: 150, y: 300, name: "camera frames", identity: "demo-gateway", topic: "factory/+/camera", streamOutput: "buffer", chunkKb: 64, maxBufferMb: 16, wires: [["demo-describe"]] },
    { id: "demo-describe", type: "function", z: tab, x: 360, y: 300, name: "describe", func: "msg.payload = `${msg.payload.length} bytes from ${msg.peer.name || msg.peer.id}`;\nreturn msg;", outputs: 1, wires: [["demo-frames"]] },
    { id: "demo-list-peers", type: "inject", z: tab, x: 130, y: 380, name: "list peers", props: [{ p: "payload" }], repeat: "", once: false, payload: "", payloadType: "date", wires: [["demo-discover"]] },
    { id: "demo-discover", type: "peer-discover", z: tab, x: 330, y: 380, name: "gateway in range?", identity: "demo-sensor", transports: [], trustedOnly: false, wires: [["demo-peers"]] },
    { id: "demo-peers", type: "debug", z: tab, x: 540, y: 380, name: "peers", active: true, tosidebar: true, console: false, complete: "true", targetType: "full", statusVal: "", statusType: "auto", wires: [] },
    { id: "demo-frames", type: "debug", z: tab, x: 550, y: 300, name: "frames", active: true, tosidebar: true, console: false, complete: "payload", targetType: "msg", statusVal: "", statusType: "auto", wires: [] },
  ];
}
