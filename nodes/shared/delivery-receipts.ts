import { randomBytes } from "node:crypto";
import type { Node, NodeAPI, NodeMessage } from "node-red";
import { WireError } from "../../lib";

/** The parts of Node-RED's send and receive hook events read here. */
interface HookEvent {
  msg: NodeMessage & { _msgid?: string };
  source?: { id?: string };
  destination: { id: string; node?: unknown };
}

type Hooks = NodeAPI["hooks"];

interface Pending {
  sourceId: string;
  /** The destination nodes Node-RED routed the msg to that have not run their input handler yet. */
  awaiting: Set<unknown>;
  /** Still inside node.send: a delivery finished early (sync delivery) must not settle it before the rest are routed. */
  sending: boolean;
  since: number;
  failure?: Error;
  settle(failure?: Error): void;
}

/** A msg whose delivery the hooks never report (another hook halted it) counts as handed over after this long. */
const GIVE_UP_MS = 10_000;
/**
 * The hooks are taken out once no msg has been waiting for this long. Node-RED runs every hook on every
 * msg of every flow in the runtime: left in, they cut a link out → link in flow's rate by a quarter or
 * more on this machine, for a peer receive that had nothing in flight.
 */
const HOOKS_IDLE_MS = 1_000;
const HOOK_LABEL = "peer-mesh-receipts";

/**
 * Tells when Node-RED has run the input handler of every node a msg was routed to. Node-RED delivers a
 * sent msg a turn later; a deploy that stops the next node in between drops it without a word. A peer
 * receive that acknowledged on node.send would then have told the sender "delivered" for a msg that
 * no flow saw (found by the deploy-churn test: 2 of 4,071 acknowledged messages lost).
 */
class DeliveryWatch {
  private readonly pending = new Map<string, Pending>();
  private users = 0;
  private hooked = false;
  private sweeper: NodeJS.Timeout | undefined;
  private unhookTimer: NodeJS.Timeout | undefined;
  private nextId = 0;
  private readonly idPrefix = randomBytes(4).toString("hex");

  constructor(private readonly hooks: Hooks) {}

  use(): () => void {
    this.users += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.users -= 1;
      this.unhookWhenIdle();
    };
  }

  /** In before a msg is sent: the hooks must see it routed. */
  private hook(): void {
    clearTimeout(this.unhookTimer);
    this.unhookTimer = undefined;
    if (this.hooked) return;
    this.hooked = true;
    if (this.hooks.has(`preDeliver.${HOOK_LABEL}`)) return;
    this.hooks.add(`preDeliver.${HOOK_LABEL}`, (event: HookEvent) => this.routed(event));
    this.hooks.add(`postReceive.${HOOK_LABEL}`, (event: HookEvent) => this.received(event));
  }

  /**
   * Out once nothing waits, after a while (a burst adds them once), at once when no node uses them.
   * They stay while a msg is on its way even after the last node using them closed: a full deploy
   * closes peer receive together with the nodes after it, and those are the deliveries to watch.
   */
  private unhookWhenIdle(): void {
    if (!this.hooked || this.pending.size > 0) return;
    if (this.users === 0) return this.unhook();
    this.unhookTimer ??= setTimeout(() => {
      this.unhookTimer = undefined;
      if (this.pending.size === 0) this.unhook();
    }, HOOKS_IDLE_MS).unref();
  }

  private unhook(): void {
    clearTimeout(this.unhookTimer);
    this.unhookTimer = undefined;
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    this.hooked = false;
    this.hooks.remove(`*.${HOOK_LABEL}`);
  }

  /**
   * A _msgid for a msg this watch follows: unique in this process (a counter behind a random prefix),
   * and cheaper than Node-RED's generateId, which draws eight random numbers a msg.
   */
  private msgId(): string {
    this.nextId = (this.nextId + 1) % 0x100000000;
    return this.idPrefix + this.nextId.toString(16).padStart(8, "0");
  }

  /** Sends msg from node; resolves once every node it was routed to took it, rejects if one was stopped first. */
  send(node: Node, msg: NodeMessage & { _msgid?: string }): Promise<void> {
    const id = (msg._msgid = this.msgId());
    this.hook();
    return new Promise<void>((resolve, reject) => {
      const entry: Pending = {
        sourceId: node.id,
        awaiting: new Set(),
        sending: true,
        since: Date.now(),
        settle: (failure) => {
          if (this.pending.get(id) !== entry) return;
          this.pending.delete(id);
          if (failure) reject(failure);
          else resolve();
          this.unhookWhenIdle();
        },
      };
      this.pending.set(id, entry);
      try {
        node.send(msg);
      } finally {
        entry.sending = false;
      }
      if (entry.failure) entry.settle(entry.failure);
      else if (entry.awaiting.size === 0) entry.settle();
      else this.sweepLater();
    });
  }

  private routed(event: HookEvent): void {
    const entry = event.msg._msgid === undefined ? undefined : this.pending.get(event.msg._msgid);
    if (entry && event.source?.id === entry.sourceId && event.destination.node) entry.awaiting.add(event.destination.node);
  }

  private received(event: HookEvent): void {
    const entry = event.msg._msgid === undefined ? undefined : this.pending.get(event.msg._msgid);
    if (!entry || !entry.awaiting.delete(event.destination.node)) return;
    if (!hasInputHandler(event.destination.node)) {
      entry.failure ??= new WireError("NO_RECEIVER", `node ${event.destination.id} stopped (a deploy) before it took the message; nothing was delivered, the sender may send it again`);
    }
    if (entry.sending) return;
    if (entry.failure) entry.settle(entry.failure);
    else if (entry.awaiting.size === 0) entry.settle();
  }

  private sweepLater(): void {
    this.sweeper ??= setInterval(() => {
      const stale = Date.now() - GIVE_UP_MS;
      for (const entry of this.pending.values()) if (entry.since < stale) entry.settle(entry.failure);
      if (this.pending.size === 0) {
        clearInterval(this.sweeper);
        this.sweeper = undefined;
        this.unhookWhenIdle();
      }
    }, GIVE_UP_MS / 2).unref();
  }
}

/**
 * Whether Node-RED would have run the node's input handler: a stopped node has none left. Node-RED
 * offers no public test for it; a runtime whose nodes lack these fields counts as having one.
 */
function hasInputHandler(node: unknown): boolean {
  const internals = node as { _inputCallback?: unknown; _inputCallbacks?: unknown[] | null };
  if (!("_inputCallback" in internals)) return true;
  return typeof internals._inputCallback === "function" || (Array.isArray(internals._inputCallbacks) && internals._inputCallbacks.length > 0);
}

const watches = new WeakMap<Hooks, DeliveryWatch>();

export interface DeliveryReceipts {
  /** node.send(msg), resolving when the nodes wired after it took it (see DeliveryWatch). */
  send(msg: NodeMessage): Promise<void>;
  /** From the node's close handler. */
  release(): void;
}

/**
 * Receipts for what node sends. Where the runtime has no hooks (Node-RED before 1.3, the node test
 * helper) a msg counts as delivered once node.send returns, as it did before.
 */
export function deliveryReceipts(RED: NodeAPI, node: Node): DeliveryReceipts {
  const hooks = (RED as Partial<NodeAPI>).hooks;
  if (!hooks) {
    return {
      send: async (msg) => {
        node.send(msg);
      },
      release: () => undefined,
    };
  }
  let watch = watches.get(hooks);
  if (!watch) watches.set(hooks, (watch = new DeliveryWatch(hooks)));
  const release = watch.use();
  const active = watch;
  return { send: (msg) => active.send(node, msg), release };
}
