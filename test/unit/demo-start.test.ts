import http from "node:http";
import type { AddressInfo } from "node:net";
import should from "should";
import { waitForEditor } from "../../scripts/demo";

/**
 * npm start waits for Node-RED's flows, not only its editor: the HTTP server answers before the flows are
 * loaded, and a GET /flows then fails inside Node-RED (an error in its log; on a later start the demo
 * would have been deployed over the user's flows).
 */
describe("npm start: waiting for Node-RED", () => {
  it("returns only once the runtime reports its flows started, though the editor answered long before", async () => {
    let started = false;
    const server = http.createServer((req, res) => {
      if (req.url === "/settings") return void res.writeHead(200, { "content-type": "application/json" }).end("{}");
      if (req.url === "/diagnostics") return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ runtime: { flows: { started } } }));
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      let ready = false;
      const waiting = waitForEditor(url, { exitCode: null }, 10_000).then(() => (ready = true));
      await new Promise((resolve) => setTimeout(resolve, 600)); // several polls while the flows load
      should(ready).be.false();
      started = true;
      await waiting;
      should(ready).be.true();
    } finally {
      server.close();
    }
  });
});
