import should from "should";
import { parseCircuitStatus, StalledRendezvous, type CircuitControl } from "../../lib/tor/stalled-rendezvous";

const B = "b".repeat(56);
const C = "c".repeat(56);

/** A control port that answers circuit-status from a list and records CLOSECIRCUIT. */
class FakeControl implements CircuitControl {
  lines: string[] = [];
  closed: string[] = [];

  async getInfo(key: string): Promise<string> {
    should(key).equal("circuit-status");
    return this.lines.join("\n");
  }

  async command(line: string): Promise<unknown> {
    const id = /^CLOSECIRCUIT (\S+)$/.exec(line)?.[1];
    if (!id) throw new Error(`unexpected command ${line}`);
    if (!this.lines.some((entry) => entry.startsWith(`${id} `))) throw new Error("552 Unknown circuit");
    this.closed.push(id);
    this.lines = this.lines.filter((entry) => !entry.startsWith(`${id} `));
    return undefined;
  }
}

function circuit(id: number, purpose: string, state: string | undefined, service: string): string {
  return `${id} BUILT $AAAA~relay0,$BBBB~relay1 BUILD_FLAGS=IS_INTERNAL,NEED_CAPACITY PURPOSE=${purpose}${state ? ` HS_STATE=${state}` : ""} REND_QUERY=${service} TIME_CREATED=2026-12-03T17:54:54.000000`;
}

describe("stalled rendezvous (a peer's tor that died after taking the introduction)", () => {
  it("reads tor's circuit-status lines", () => {
    should(parseCircuitStatus(`${circuit(28, "HS_CLIENT_REND", "HSCR_ESTABLISHED_WAITING", B)}\n7 BUILT $AAAA~relay0 PURPOSE=GENERAL`)).eql([
      { id: "28", purpose: "HS_CLIENT_REND", hsState: "HSCR_ESTABLISHED_WAITING", service: B },
      { id: "7", purpose: "GENERAL", hsState: undefined, service: undefined },
    ]);
    should(parseCircuitStatus("")).eql([]);
  });

  it("closes a rendezvous circuit that has waited for its service longer than the stall time, and only that one", async () => {
    const control = new FakeControl();
    control.lines = [
      circuit(28, "HS_CLIENT_REND", "HSCR_ESTABLISHED_WAITING", B),
      circuit(29, "HS_CLIENT_REND", "HSCR_JOINED", B),
      circuit(30, "HS_CLIENT_REND", "HSCR_ESTABLISHED_WAITING", C),
      circuit(31, "HS_CLIENT_INTRO", undefined, B),
    ];
    const told: Array<[string, string[]]> = [];
    const watch = new StalledRendezvous(() => control, { stallMs: 15_000, onClosed: (service, ids) => told.push([service, ids]) });
    const done = watch.dialling(B);
    try {
      await watch.check(1_000);
      should(control.closed).eql([]); // just seen waiting: a live service answers within seconds
      await watch.check(10_000);
      should(control.closed).eql([]);
      await watch.check(16_000);
      // 29 carries live connections, 30 is another service nobody is dialling, 31 is not a rendezvous.
      should(control.closed).eql(["28"]);
      should(told).eql([[B, ["28"]]]);
    } finally {
      done();
    }
  });

  it("times a circuit from when it was first seen waiting, not from its creation", async () => {
    const control = new FakeControl();
    control.lines = [circuit(40, "HS_CLIENT_REND", "HSCR_ESTABLISHED_IDLE", B)];
    const watch = new StalledRendezvous(() => control, { stallMs: 15_000 });
    const done = watch.dialling(B);
    try {
      await watch.check(0);
      control.lines = [circuit(40, "HS_CLIENT_REND", "HSCR_ESTABLISHED_WAITING", B)];
      await watch.check(20_000);
      await watch.check(30_000);
      should(control.closed).eql([]);
      await watch.check(35_000);
      should(control.closed).eql(["40"]);
    } finally {
      done();
    }
  });

  it("watches nothing once no dial to the service is under way", async () => {
    const control = new FakeControl();
    control.lines = [circuit(28, "HS_CLIENT_REND", "HSCR_ESTABLISHED_WAITING", B)];
    const watch = new StalledRendezvous(() => control, { stallMs: 15_000 });
    const first = watch.dialling(B);
    const second = watch.dialling(B);
    await watch.check(0);
    first();
    await watch.check(20_000);
    should(control.closed).eql(["28"]); // the second dial still waits
    control.lines = [circuit(50, "HS_CLIENT_REND", "HSCR_ESTABLISHED_WAITING", B)];
    second();
    await watch.check(40_000);
    await watch.check(80_000);
    should(control.closed).eql(["28"]);
  });

  it("after a failed dial closes the service's unfinished circuits and keeps joined ones", async () => {
    const control = new FakeControl();
    control.lines = [
      circuit(28, "HS_CLIENT_REND", "HSCR_ESTABLISHED_WAITING", B),
      circuit(29, "HS_CLIENT_REND", "HSCR_JOINED", B),
      circuit(31, "HS_CLIENT_INTRO", undefined, B),
      circuit(32, "HS_CLIENT_REND", "HSCR_CONNECTING", C),
    ];
    await new StalledRendezvous(() => control).failed(B.toUpperCase());
    should(control.closed).eql(["28", "31"]);
  });

  it("does nothing without a control connection (tor gone)", async () => {
    const watch = new StalledRendezvous(() => undefined);
    const done = watch.dialling(B);
    await watch.check(0);
    await watch.failed(B);
    done();
  });
});
