// The console message that ends a cold-start load: written by the page (common.js), awaited by
// bench/lib/coldstart.mjs. A module of its own so node can import it without a window.
export const COLD_DONE = "bench:cold-start-done";
