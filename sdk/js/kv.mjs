// KV buckets: versioned values with optional TTL (docs/storage.md). The
// function's config must allow reading or writing a bucket, or calls
// reject with code "forbidden". Keys and values are strings (UTF-8) or
// bytes; values come back as Buffers, versions and counts as Numbers.
// Options: ttlMs (undefined: never expires) and durability (undefined:
// the platform's default; "durable" or "buffered").

import { call } from "./call.mjs";
import { arg, dec, durability, ms, page, parseKeys, parseList, parseNum } from "./wire.mjs";
import { KV_GET, KV_GETV, KV_PUT, KV_DELETE, KV_CAS, KV_INCR, KV_LIST, KV_BATCH } from "./ops.mjs";

/** Resolves to the value at key; a missing key rejects with not_found. */
export async function get(bucket, key) {
  return call(KV_GET, bucket, key);
}

/** Resolves to {value, version} of key, the version being what cas takes. */
export async function getVersion(bucket, key) {
  const [value, version] = parseList(await call(KV_GETV, bucket, key), 2);
  return { value, version: parseNum(version) };
}

/** Writes value at key and resolves to its new version. */
export async function put(bucket, key, value, { ttlMs, durability: d } = {}) {
  return parseNum(await call(KV_PUT, bucket, key, arg(value), ms(ttlMs, "ttlMs"), durability(d)));
}

/** Removes key; a missing key is not an error. Exported as `delete`. */
async function del(bucket, key, { durability: d } = {}) {
  await call(KV_DELETE, bucket, key, durability(d));
}
export { del as delete };

/** Writes value at key only if the key's version is still version (0:
 * only if it does not exist) and resolves to the new version; otherwise
 * rejects with conflict. */
export async function cas(bucket, key, version, value, { ttlMs, durability: d } = {}) {
  return parseNum(
    await call(KV_CAS, bucket, key, dec(version, "version"), arg(value), ms(ttlMs, "ttlMs"), durability(d)),
  );
}

/** Atomically adds delta to the decimal integer at key (missing: 0) and
 * resolves to the result. */
export async function incr(bucket, key, delta = 1, { durability: d } = {}) {
  return parseNum(await call(KV_INCR, bucket, key, dec(delta, "delta"), durability(d)));
}

/** Resolves to {keys, next}: up to limit keys (0: 100; at most 1000)
 * starting with prefix, after cursor; next is "" on the last page. */
export async function list(bucket, prefix = "", cursor = "", limit = 0) {
  return parseKeys(await call(KV_LIST, bucket, ...page(prefix, cursor, limit)));
}

/** Applies ops atomically (all or none) and resolves to each op's new
 * version (0 for deletes). An op is {op: "put", key, value} or
 * {op: "delete", key}, as in the HTTP API. */
export async function batch(bucket, ops, d) {
  const args = [bucket, durability(d)];
  for (const o of ops) {
    if (o === null || typeof o !== "object") throw new TypeError("mote: a batch op is {op, key, value}");
    if (o.op === "put") args.push("put", arg(o.key, "key"), arg(o.value));
    else if (o.op === "delete") args.push("delete", arg(o.key, "key"), "");
    else throw new RangeError(`mote: batch op is "put" or "delete", not ${JSON.stringify(o.op)}`);
  }
  return parseList(await call(KV_BATCH, ...args)).map(parseNum);
}
