/**
 * Preloaded into a Node-RED a memory benchmark measures (node --expose-gc -r): a full garbage collection
 * every second, so that what the resident size shows is what is held, not garbage not yet collected.
 */
const collect = (globalThis as { gc?: () => void }).gc;
if (collect) setInterval(collect, 1_000).unref();
