/**
 * Unsticks connections to an onion service whose tor died between acknowledging an introduction and
 * meeting at the rendezvous point.
 *
 * The case: the service's introduction point acknowledges a client's INTRODUCE1 as soon as it has relayed
 * it, so a service that exits (crash, kill, restart) just then leaves the client's rendezvous circuit
 * waiting for a RENDEZVOUS2 that never comes. tor attaches every new stream to that onion to the waiting
 * circuit and abandons it only after about three minutes (circuit_expire_building; measured 181 s with
 * tor 0.4.9), so the peer stays unreachable that long although its new tor published a fresh descriptor
 * seconds after the restart. Closing the waiting circuit makes tor retry at once: the old introduction
 * points refuse, tor fetches the new descriptor, and the waiting stream connects.
 */

/** What this needs of the control connection (a TorControl). */
export interface CircuitControl {
  getInfo(key: string): Promise<string>;
  command(line: string): Promise<unknown>;
}

export interface ClientCircuit {
  id: string;
  purpose: string;
  /** HSCR_CONNECTING, HSCR_ESTABLISHED_IDLE, HSCR_ESTABLISHED_WAITING (introduction acknowledged), HSCR_JOINED. */
  hsState?: string;
  /** The onion service (its 56-character id, no ".onion") the circuit is for. */
  service?: string;
}

/** Longer than a rendezvous takes when the service is alive (a circuit to the rendezvous point: seconds). */
export const DEFAULT_STALL_MS = 15_000;
const CHECK_INTERVAL_MS = 3_000;

/** The circuits of a circuit-status reply (control-spec 4.1.1 CIRC syntax), one per line. */
export function parseCircuitStatus(text: string): ClientCircuit[] {
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => /^\d+ /.test(line))
    .map((line) => {
      const field = (name: string): string | undefined => new RegExp(`(?:^| )${name}=(\\S+)`).exec(line)?.[1];
      return { id: line.split(" ")[0], purpose: field("PURPOSE") ?? "", hsState: field("HS_STATE"), service: field("REND_QUERY")?.toLowerCase() };
    });
}

/**
 * Watches the rendezvous circuits of the onion services this device is dialling: one left waiting after
 * its introduction was acknowledged for longer than `stallMs` is closed, and so is every unfinished
 * circuit to a service whose dial failed.
 */
export class StalledRendezvous {
  private readonly pending = new Map<string, number>();
  private readonly waitingSince = new Map<string, number>();
  private timer?: NodeJS.Timeout;
  private checking?: Promise<void>;

  constructor(
    private readonly control: () => CircuitControl | undefined,
    private readonly options: { stallMs?: number; onClosed?: (service: string, circuits: string[]) => void } = {},
  ) {}

  /** Watches `service` (56-character id) until the returned function is called (the dial ended). */
  dialling(service: string): () => void {
    const key = service.toLowerCase();
    this.pending.set(key, (this.pending.get(key) ?? 0) + 1);
    this.timer ??= setInterval(() => void this.check(), CHECK_INTERVAL_MS).unref();
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      const left = (this.pending.get(key) ?? 1) - 1;
      if (left > 0) this.pending.set(key, left);
      else this.pending.delete(key);
      if (this.pending.size === 0) this.stop();
    };
  }

  /** A dial to `service` failed or was given up: its unfinished circuits go, so the next dial starts afresh. */
  async failed(service: string): Promise<void> {
    const key = service.toLowerCase();
    const circuits = await this.circuits();
    await this.close(key, circuits.filter((circuit) => circuit.service === key && isUnfinished(circuit)));
  }

  /** One pass: closes rendezvous circuits that have waited too long for their service. */
  async check(now = Date.now()): Promise<void> {
    if (this.checking) return this.checking;
    this.checking = (async () => {
      const circuits = await this.circuits();
      const seen = new Set<string>();
      const stallMs = this.options.stallMs ?? DEFAULT_STALL_MS;
      for (const service of this.pending.keys()) {
        const stuck: ClientCircuit[] = [];
        for (const circuit of circuits) {
          if (circuit.service !== service || circuit.purpose !== "HS_CLIENT_REND" || circuit.hsState !== "HSCR_ESTABLISHED_WAITING") continue;
          seen.add(circuit.id);
          const since = this.waitingSince.get(circuit.id) ?? now;
          this.waitingSince.set(circuit.id, since);
          if (now - since >= stallMs) stuck.push(circuit);
        }
        await this.close(service, stuck);
      }
      for (const id of this.waitingSince.keys()) if (!seen.has(id)) this.waitingSince.delete(id);
    })().finally(() => (this.checking = undefined));
    return this.checking;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.waitingSince.clear();
  }

  private async circuits(): Promise<ClientCircuit[]> {
    const control = this.control();
    if (!control) return [];
    return parseCircuitStatus(await control.getInfo("circuit-status").catch(() => ""));
  }

  private async close(service: string, circuits: ClientCircuit[]): Promise<void> {
    const control = this.control();
    if (!control || circuits.length === 0) return;
    const closed: string[] = [];
    for (const circuit of circuits) {
      // A circuit tor closed meanwhile answers 552: nothing left to do for it.
      if (await control.command(`CLOSECIRCUIT ${circuit.id}`).then(() => true, () => false)) closed.push(circuit.id);
      this.waitingSince.delete(circuit.id);
    }
    if (closed.length > 0) this.options.onClosed?.(service, closed);
  }
}

/** Introduction and rendezvous circuits not yet joined: a joined one carries live connections. */
function isUnfinished(circuit: ClientCircuit): boolean {
  if (circuit.purpose === "HS_CLIENT_INTRO") return true;
  return circuit.purpose === "HS_CLIENT_REND" && circuit.hsState !== "HSCR_JOINED";
}
