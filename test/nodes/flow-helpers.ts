import type { NodeMessage } from "node-red";
import type { IdentityConfigNode } from "../../nodes/shared/identity-node";
import { helper } from "../helpers/node-red";

export type Msg = NodeMessage & Record<string, unknown>;

/** Collects what a helper node receives; `next(n)` resolves with the next n msgs. */
export function collector(id: string) {
  const node = helper.getNode(id);
  const queue: Msg[] = [];
  const waiters: Array<() => void> = [];
  node.on("input", (msg: Msg) => {
    queue.push(msg);
    waiters.splice(0).forEach((wake) => wake());
  });
  return {
    queue,
    async next(count = 1): Promise<Msg[]> {
      while (queue.length < count) await new Promise<void>((resolve) => waiters.push(resolve));
      return queue.splice(0, count);
    },
  };
}

/** Puts every flow node on one tab; config nodes stay global. A catch node needs a tab to have a scope. */
export function inTab(nodes: Array<Record<string, unknown>>): Array<Record<string, unknown>> {
  return [{ id: "tab", type: "tab" }, ...nodes.map((node) => (node.type === "identity-config" ? node : { z: "tab", ...node }))];
}

/** Resolves with the first status of node `id` that satisfies `wanted` (badges are throttled, so wait for it). */
export function statusWhere(id: string, wanted: (status: { fill?: string; text?: string }) => boolean): Promise<{ fill?: string; text?: string }> {
  const node = helper.getNode(id) as unknown as {
    on(event: string, listener: (call: { args: [{ fill?: string; text?: string }] }) => void): void;
    off(event: string, listener: (call: { args: [{ fill?: string; text?: string }] }) => void): void;
  };
  return new Promise((resolve) => {
    const listener = (call: { args: [{ fill?: string; text?: string }] }): void => {
      if (!wanted(call.args[0])) return;
      node.off("call:status", listener);
      resolve(call.args[0]);
    };
    node.on("call:status", listener);
  });
}

export async function ready(...ids: string[]): Promise<void> {
  await Promise.all(ids.map((id) => (helper.getNode(id) as unknown as IdentityConfigNode).ready));
}

export function statuses(id: string): Array<{ fill?: string; text?: string }> {
  const calls: Array<{ fill?: string; text?: string }> = [];
  const node = helper.getNode(id) as unknown as { on(event: string, listener: (call: { args: [{ fill?: string; text?: string }] }) => void): void };
  node.on("call:status", (call) => calls.push(call.args[0]));
  return calls;
}
