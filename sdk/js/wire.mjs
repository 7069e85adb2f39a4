// Encoders and decoders shared by the typed wrappers. docs/storage.md and
// docs/flows.md define the wire form: numbers are decimal ASCII, durations
// decimal milliseconds, an absent optional argument is empty, and a result
// of several values is an argument list itself.

import { MoteError, decodeArgs } from "./call.mjs";

/** Durabilities of a write: acknowledged once fsynced, or once in memory
 * (may be lost in a crash). Leaving it out uses the platform's default. */
export const DURABLE = "durable";
export const BUFFERED = "buffered";

/** Reports whether err is a MoteError with code not_found. */
export const isNotFound = (err) => err instanceof MoteError && err.code === "not_found";
/** Reports whether err is a MoteError with code conflict (a stale
 * compare-and-swap, a held lease). */
export const isConflict = (err) => err instanceof MoteError && err.code === "conflict";
/** Reports whether err is a MoteError with code timeout. */
export const isTimeout = (err) => err instanceof MoteError && err.code === "timeout";

const EMPTY = Buffer.alloc(0);

/** arg returns a string (as UTF-8) or bytes argument as a Buffer. */
export function arg(v, name = "value") {
  if (typeof v === "string") return Buffer.from(v);
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  throw new TypeError(`mote: ${name} must be a string or bytes, not ${typeName(v)}`);
}

/** dec encodes an integer (a safe-integer Number or a BigInt) as decimal. */
export function dec(n, name = "number") {
  if (typeof n === "bigint" || Number.isSafeInteger(n)) return Buffer.from(String(n));
  throw new TypeError(`mote: ${name} must be an integer, not ${typeName(n)} ${String(n)}`);
}

/** ms encodes a duration in milliseconds, rounded up; undefined, null or 0
 * is empty (the default). */
export function ms(v, name = "duration") {
  if (v === undefined || v === null) return EMPTY;
  if (typeof v !== "number" || Number.isNaN(v)) {
    throw new TypeError(`mote: ${name} must be a number of milliseconds, not ${typeName(v)}`);
  }
  if (v < 0) throw new RangeError(`mote: ${name} must not be negative`);
  if (v === 0) return EMPTY;
  if (!Number.isFinite(v)) throw new RangeError(`mote: ${name} must be finite`);
  return Buffer.from(String(Math.ceil(v)));
}

/** durability encodes undefined (the default), "durable" or "buffered". */
export function durability(d) {
  if (d === undefined || d === null || d === "") return EMPTY;
  if (d !== DURABLE && d !== BUFFERED) throw new RangeError(`mote: durability is "durable" or "buffered", not ${JSON.stringify(d)}`);
  return Buffer.from(d);
}

/** payload encodes an invocation payload: bytes as they are, a string as
 * UTF-8, undefined as empty, anything else as JSON (as the bootstrap
 * encodes a handler's result). */
export function payload(v) {
  if (v === undefined) return EMPTY;
  if (v instanceof Uint8Array || typeof v === "string") return arg(v);
  const s = JSON.stringify(v);
  if (s === undefined) throw new TypeError(`mote: payload of type ${typeName(v)} has no JSON form`);
  return Buffer.from(s);
}

export function malformed(what) {
  return new MoteError("internal", `mote: malformed ${what} from host`);
}

/** parseNum decodes a decimal result as a Number (exact up to 2^53). */
export function parseNum(b) {
  const s = Buffer.from(b).toString("latin1");
  if (!/^-?[0-9]{1,20}$/.test(s)) throw malformed("number");
  return Number(s);
}

/** parseList decodes a result list of at least (exact: exactly) n values. */
export function parseList(b, n = 0, exact = false) {
  let vals;
  try {
    vals = decodeArgs(b);
  } catch {
    throw malformed("result");
  }
  if (vals.length < n || (exact && vals.length !== n)) throw malformed("result");
  return vals;
}

/** parseKeys decodes a page of keys, [next_cursor, key...], as {keys, next}. */
export function parseKeys(b) {
  const [next, ...keys] = parseList(b, 1);
  return { keys: keys.map((k) => k.toString()), next: next.toString() };
}

/** page encodes the prefix?, cursor?, limit? arguments of a list op. */
export function page(prefix = "", cursor = "", limit = 0) {
  return [arg(prefix, "prefix"), arg(cursor, "cursor"), limit ? dec(limit, "limit") : EMPTY];
}

/** unixMs decodes a Unix time in milliseconds as a Date. */
export function unixMs(b) {
  return new Date(parseNum(b));
}

function typeName(v) {
  return v === null ? "null" : Array.isArray(v) ? "array" : typeof v;
}
