import should from "should";
import type { Http2SecureServer } from "node:http2";
import { Device } from "../../lib";
import { encodeBatch } from "../../lib/wire/batch";
import { devicePair, stopAll } from "../helpers/devices";
import { rawRequest, rawSession } from "../helpers/raw-client";

function requestsServed(device: Device): () => number {
  let count = 0;
  (device as unknown as { server: { server: Http2SecureServer } }).server.server.on("stream", () => void count++);
  return () => count;
}

describe("wire: bursts leave as batches", () => {
  let a: Device | undefined;
  let b: Device | undefined;
  afterEach(async () => {
    await stopAll(a, b);
    a = b = undefined;
  });

  it("delivers a burst of 500 messages once each, in far fewer requests, with one ack per message", async () => {
    ({ a, b } = await devicePair());
    const served = requestsServed(b);
    const delivered: number[] = [];
    b.onMessage("burst", (message) => void delivered.push(message.payload as number));
    const acks = await Promise.all(Array.from({ length: 500 }, (_, i) => a!.send("b", "burst", i)));
    should(acks.every((ack) => ack.receivers === 1 && ack.topic === "burst")).be.true();
    should(new Set(acks.map((ack) => ack.id)).size).equal(500);
    should(delivered.sort((x, y) => x - y)).eql(Array.from({ length: 500 }, (_, i) => i));
    should(served()).be.below(100);
  });

  it("gives each message in a batch its own outcome: delivered, no receiver, or refused", async () => {
    ({ a, b } = await devicePair());
    b.authorize = (_peer, _verb, resource) => resource !== "msg/secret";
    const served = requestsServed(b);
    const got: string[] = [];
    b.onMessage("open/+", (message) => void got.push(message.topic));
    const topics = Array.from({ length: 60 }, (_, i) => ["open/x", "nobody", "secret"][i % 3]);
    const outcomes = await Promise.allSettled(topics.map((topic) => a!.send("b", topic, 1)));
    outcomes.forEach((outcome, i) => {
      if (topics[i] === "open/x") should(outcome.status).equal("fulfilled");
      else should((outcome as PromiseRejectedResult).reason).match({ code: topics[i] === "nobody" ? "NO_RECEIVER" : "REFUSED" });
    });
    should(got).have.length(20);
    should(served()).be.below(60);
  });

  it("answers a malformed batch with 400 and a reason, and keeps serving", async () => {
    ({ a, b } = await devicePair());
    const aIdentity = a.identity;
    const session = await rawSession(b.port!, { key: aIdentity.privateKeyPem, cert: aIdentity.certificatePem });
    const post = (body: Buffer) => rawRequest(session, { ":method": "POST", ":path": "/batch", "content-type": "application/x-peer-mesh-batch" }, body);
    const whole = encodeBatch([{ id: "1", topic: "t", contentType: "text/plain", body: Buffer.from("hello") }]);
    const cut = await post(whole.subarray(0, whole.length - 2));
    should(cut.status).equal(400);
    should(JSON.parse(cut.body).reason).match(/cut short/);
    const garbage = Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from("{{{"), Buffer.from([0, 0, 0, 0])]);
    should(JSON.parse((await post(garbage)).body).reason).match(/unreadable header/);
    const huge = Buffer.from([0xff, 0xff, 0xff, 0xff]);
    should((await post(huge)).status).equal(400);
    session.destroy();
    let got = 0;
    b.onMessage("t", () => void got++);
    await a.send("b", "t", "still serving");
    should(got).equal(1);
  });
});
