/**
 * A TCP relay that holds every chunk for a fixed time in each direction: the 200 ms delay of the fault
 * tests. The kernel here has no netem, so the delay is added in user space on the path between two test
 * hosts: a device dials the relay (in its own namespace) and the relay dials the peer. Bandwidth is
 * unchanged; every byte arrives `delayMs` late, in order, and a close is passed on just as late.
 *
 * Started by the netns harness with: <listen port> <target host> <target port> <delay ms>; tells its
 * parent "ready" over IPC and exits when the parent goes away.
 */
import net from "node:net";

const [listenPort, targetHost, targetPort, delayMs] = process.argv.slice(2);
const delay = Number(delayMs);
/** Bytes held in one direction before the relay stops reading it (TCP's own flow control takes over). */
const MAX_HELD_BYTES = 4 * 1024 * 1024;

function delayedPipe(from: net.Socket, to: net.Socket): void {
  let held = 0;
  from.on("data", (chunk: Buffer) => {
    held += chunk.length;
    if (held > MAX_HELD_BYTES) from.pause();
    setTimeout(() => {
      held -= chunk.length;
      if (!to.destroyed) to.write(chunk);
      if (held <= MAX_HELD_BYTES && from.isPaused()) from.resume();
    }, delay);
  });
  from.on("end", () => setTimeout(() => to.end(), delay));
  from.on("error", () => setTimeout(() => to.destroy(), delay));
  from.on("close", () => setTimeout(() => to.destroy(), delay + 10));
}

const server = net.createServer((client) => {
  const upstream = net.connect(Number(targetPort), targetHost);
  delayedPipe(client, upstream);
  delayedPipe(upstream, client);
});
server.listen(Number(listenPort), "127.0.0.1", () => process.send?.({ type: "ready", at: Date.now() }));
process.on("disconnect", () => process.exit(0));
