// Ephemeral data scoped to this invocation's call tree (docs/storage.md):
// every function in the tree can read and write it, no other tree can, and
// it is deleted when the tree completes or its ttlMs passes (undefined:
// the platform's default of 24 hours). As the Go SDK's EphPut, EphGet, ...

import { call } from "./call.mjs";
import { arg, ms, page, parseKeys } from "./wire.mjs";
import { EPH_PUT, EPH_GET, EPH_DELETE, EPH_LIST } from "./ops.mjs";

/** Writes value at key in the call tree's scope. */
export async function put(key, value, ttlMs) {
  await call(EPH_PUT, key, arg(value), ms(ttlMs, "ttlMs"));
}

/** Resolves to the value at key; a missing key rejects with not_found. */
export async function get(key) {
  return call(EPH_GET, key);
}

/** Removes key from the call tree's scope. Exported as `delete`. */
async function del(key) {
  await call(EPH_DELETE, key);
}
export { del as delete };

/** Resolves to {keys, next} of the call tree's scope. */
export async function list(prefix = "", cursor = "", limit = 0) {
  return parseKeys(await call(EPH_LIST, ...page(prefix, cursor, limit)));
}
