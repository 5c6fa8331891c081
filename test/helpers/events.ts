import type { EventEmitter } from "node:events";

/**
 * Resolves with the arguments of the first `event` whose arguments satisfy `match`, or rejects after
 * `timeoutMs` saying what it waited for. Tests wait for events, not for sleeps.
 */
export function waitFor<T extends unknown[]>(
  emitter: EventEmitter,
  event: string,
  match: (...args: T) => boolean,
  timeoutMs: number,
  what = event,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const listener = (...args: unknown[]): void => {
      if (!match(...(args as T))) return;
      cleanup();
      resolve(args as T);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no ${what} within ${timeoutMs} ms`));
    }, timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      emitter.off(event, listener);
    };
    emitter.on(event, listener);
  });
}
