import dgram from "node:dgram";

/**
 * A stranger on the LAN: joins the mDNS group on the test interface of its namespace and reports every
 * packet it hears, raw, to its parent. Run inside a test host: `node mdns-listener.js <interface address>`.
 */
const [address] = process.argv.slice(2);
const socket = dgram.createSocket({ type: "udp4", reuseAddr: true });
socket.on("message", (packet) => process.send?.({ type: "packet", at: Date.now(), hex: packet.toString("hex") }));
socket.on("error", (err) => process.send?.({ type: "failed", message: err.message }));
socket.bind(5353, () => {
  socket.addMembership("224.0.0.251", address);
  process.send?.({ type: "listening" });
});
process.on("disconnect", () => socket.close());
