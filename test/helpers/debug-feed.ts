import WebSocket from "ws";

export interface DebugMessage {
  id: string;
  msg: string;
  format: string;
}

/** Listens to the editor's debug sidebar feed, as the browser does, and waits for a message from one node. */
export function debugFeed(url: string) {
  const socket = new WebSocket(`${url.replace("http", "ws")}/comms`);
  const seen: DebugMessage[] = [];
  const waiters: Array<() => void> = [];
  // Subscribed once the socket is open and the request is on its way; a message from a node proves the
  // subscription is in force (see injectUntilSeen).
  const ready = new Promise<void>((resolve, reject) => {
    socket.once("open", () => socket.send(JSON.stringify({ subscribe: "debug" }), (err) => (err ? reject(err) : resolve())));
    socket.once("error", reject);
  });
  socket.on("message", (data) => {
    const events = JSON.parse(String(data)) as Array<{ topic: string; data: DebugMessage }>;
    for (const event of [events].flat()) if (event.topic === "debug") seen.push(event.data);
    waiters.splice(0).forEach((wake) => wake());
  });
  return {
    ready,
    async from(nodeId: string, timeoutMs = 20_000, wanted: (message: DebugMessage) => boolean = () => true): Promise<DebugMessage> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = seen.find((message) => message.id === nodeId && wanted(message));
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`no debug message from ${nodeId} within ${timeoutMs} ms`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 500);
        });
      }
    },
    close: () => socket.close(),
  };
}
