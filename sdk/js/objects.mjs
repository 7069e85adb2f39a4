// Object buckets: whole blobs with a SHA-256 and a content type
// (docs/storage.md). Through host calls an object moves whole up to the
// platform's per-call cap (8 MiB by default; more rejects with
// payload_too_large): read larger ones in ranges and write them through
// the HTTP API.

import { call } from "./call.mjs";
import { arg, dec, page, parseKeys, parseList, parseNum, unixMs } from "./wire.mjs";
import { OBJ_PUT, OBJ_GET, OBJ_HEAD, OBJ_DELETE, OBJ_LIST } from "./ops.mjs";

/** Stores data at key and resolves to {size, sha256, contentType}. */
export async function put(bucket, key, data, contentType = "") {
  const [size, sha] = parseList(await call(OBJ_PUT, bucket, key, arg(data, "data"), contentType), 2);
  return { size: parseNum(size), sha256: sha.toString(), contentType };
}

/** Resolves to the object at key, or length bytes of it from offset
 * (length undefined: to the end). */
export async function get(bucket, key, offset = 0, length) {
  if (!offset && length === undefined) return call(OBJ_GET, bucket, key);
  return call(OBJ_GET, bucket, key, dec(offset, "offset"), length === undefined ? "" : dec(length, "length"));
}

/** Resolves to length bytes of the object from offset (length < 0: to
 * the end), as the Go SDK's GetRange. */
export async function getRange(bucket, key, offset, length = -1) {
  return get(bucket, key, offset, length < 0 ? undefined : length);
}

/** Resolves to {size, sha256, contentType, modified (a Date)}. */
export async function head(bucket, key) {
  const [size, sha, ctype, modified] = parseList(await call(OBJ_HEAD, bucket, key), 4);
  return { size: parseNum(size), sha256: sha.toString(), contentType: ctype.toString(), modified: unixMs(modified) };
}

/** Removes the object at key; a missing one rejects with not_found.
 * Exported as `delete`. */
async function del(bucket, key) {
  await call(OBJ_DELETE, bucket, key);
}
export { del as delete };

/** Resolves to {keys, next} of up to limit objects starting with prefix,
 * after cursor; next is "" on the last page. */
export async function list(bucket, prefix = "", cursor = "", limit = 0) {
  return parseKeys(await call(OBJ_LIST, bucket, ...page(prefix, cursor, limit)));
}
