import should from "should";
import { tlsOneWay } from "../../bench/tls-latency";

describe("the bench's bare TLS one-way time", () => {
  it("times each message from its write to its arrival at the other end, one at a time", async () => {
    const tls = await tlsOneWay();
    try {
      const times = await tls.measure(50);
      should(times).have.length(50);
      should(tls.received).equal(50);
      for (const ms of times) should(ms).be.above(0);
    } finally {
      await tls.close();
    }
  });
});
