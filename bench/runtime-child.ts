import type { Node, NodeMessage } from "node-red";
import { onInput, startEmbeddedNodeRed, until, type EmbeddedNodeRed } from "./embedded-node-red";

/**
 * One Node-RED runtime of the two-runtime message benchmark, in a process of its own as a device would
 * be: the parent starts it with a flow, then drives its entry nodes or counts what reaches its sinks.
 * The sender sends only against credit, and the parent hands it the receiver's counts as credit, so
 * "32 in flight" means the same for every path whatever its acknowledgements mean.
 */
export type ChildCommand =
  | { type: "start"; flows: Array<Record<string, unknown>>; credentials: Record<string, unknown>; waitFor: string[] }
  | { type: "count"; sink: string; expect: number }
  | { type: "drive"; entry: string; topic: string; count: number; window: number }
  | { type: "credit"; n: number }
  /** Ends a round that stalled (a path lost messages): stops counting and sending. */
  | { type: "reset" }
  | { type: "cpu" }
  | { type: "stop" };

export type ChildReport =
  | { type: "started" }
  | { type: "counting" }
  | { type: "got"; n: number }
  | { type: "counted"; count: number }
  | { type: "reset" }
  | { type: "cpu"; ms: number }
  | { type: "failed"; error: string };

/** Arrivals are reported in batches of this many: one IPC message per arrival would cost more than a hop. */
const REPORT_EVERY = 16;

function report(message: ChildReport): void {
  process.send?.(message);
}

/** What a node must be before the parent may drive traffic through it. */
function isReady(node: Node): boolean {
  const probe = node as unknown as { connected?: boolean };
  if ("connected" in probe) return probe.connected === true;
  return true;
}

async function main(): Promise<void> {
  let red: EmbeddedNodeRed | undefined;
  let credit = 0;
  let pump: (() => void) | undefined;
  let stopCounting: (() => void) | undefined;

  process.on("message", (command: ChildCommand) => {
    void (async () => {
      try {
        if (command.type === "start") {
          red = await startEmbeddedNodeRed(command.flows, command.credentials);
          const runtime = red;
          for (const id of command.waitFor) {
            const node = runtime.getNode(id);
            const ready = (node as unknown as { ready?: Promise<unknown> }).ready;
            if (ready) await ready;
            await until(() => isReady(node), `node ${id}`);
          }
          report({ type: "started" });
        } else if (command.type === "count") {
          let count = 0;
          let unreported = 0;
          const detach = onInput(red!.getNode(command.sink), () => {
            count += 1;
            unreported += 1;
            if (count === command.expect) {
              detach();
              stopCounting = undefined;
              report({ type: "counted", count });
            } else if (unreported === REPORT_EVERY) {
              report({ type: "got", n: unreported });
              unreported = 0;
            }
          });
          stopCounting = detach;
          report({ type: "counting" });
        } else if (command.type === "drive") {
          const entry = red!.getNode(command.entry);
          let sent = 0;
          credit = command.window;
          pump = () => {
            while (credit > 0 && sent < command.count) {
              credit -= 1;
              entry.receive({ topic: command.topic, payload: { seq: sent++ } } as NodeMessage);
            }
            if (sent === command.count) pump = undefined;
          };
          pump();
        } else if (command.type === "credit") {
          credit += command.n;
          pump?.();
        } else if (command.type === "reset") {
          stopCounting?.();
          stopCounting = undefined;
          pump = undefined;
          credit = 0;
          report({ type: "reset" });
        } else if (command.type === "cpu") {
          const usage = process.cpuUsage();
          report({ type: "cpu", ms: (usage.user + usage.system) / 1000 });
        } else {
          await red?.stop();
          process.exit(0);
        }
      } catch (err) {
        report({ type: "failed", error: (err as Error)?.stack ?? String(err) });
      }
    })();
  });
}

void main();
