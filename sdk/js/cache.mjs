// The function cache: node-local memory shared by this function's
// invocations on the node (an LRU within the budget in the function's
// config; docs/storage.md). Entries can be evicted at any time: keep only
// what can be rebuilt, such as a parsed model or a fetched config.

import { call } from "./call.mjs";
import { arg, isNotFound, ms } from "./wire.mjs";
import { CACHE_GET, CACHE_PUT, CACHE_DELETE } from "./ops.mjs";

/** Resolves to the cached value for key, or null when it is not there. */
export async function get(key) {
  try {
    return await call(CACHE_GET, key);
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

/** Caches value under key for at most ttlMs (undefined: until evicted).
 * A value over a quarter of the budget is not kept. */
export async function put(key, value, ttlMs) {
  await call(CACHE_PUT, key, arg(value), ms(ttlMs, "ttlMs"));
}

/** Drops key from the cache. Exported as `delete`. */
async function del(key) {
  await call(CACHE_DELETE, key);
}
export { del as delete };
