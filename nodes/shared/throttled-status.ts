import type { Node, NodeStatus } from "node-red";

/**
 * Status badges for nodes that see many messages a second. Translating and publishing a status costs more
 * than sending a small message, so a burst shows its latest state at most every `intervalMs`. The status
 * is built lazily: a burst of a thousand messages translates one text, not a thousand.
 */
export class ThrottledStatus {
  private pending?: () => NodeStatus;
  private timer?: NodeJS.Timeout;
  private lastShown = 0;

  constructor(private readonly node: Node, private readonly intervalMs = 250) {}

  /** Shows the status soon (at once if nothing was shown lately). */
  update(status: () => NodeStatus): void {
    this.pending = status;
    if (this.timer) return;
    const wait = this.lastShown + this.intervalMs - Date.now();
    if (wait <= 0) this.flush();
    else this.timer = setTimeout(() => this.flush(), wait);
  }

  /** Shows the status now, replacing anything pending: for errors and state changes a user must see. */
  now(status: NodeStatus): void {
    this.pending = () => status;
    this.flush();
  }

  /** Releases the timer; for the node's close handler. */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = undefined;
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const status = this.pending;
    this.pending = undefined;
    if (!status) return;
    this.lastShown = Date.now();
    this.node.status(status());
  }
}
