// Calls between functions (docs/flows.md). The platform records each call
// in the invocation's call tree, enforces depth and descendant limits,
// retries by the callee's policy and journals completed results, so that a
// retried caller gets them back without re-running them: make the same
// calls in the same order on every attempt.
//
// A payload is sent as bytes as they are, a string as UTF-8, undefined as
// empty and anything else as JSON; outputs come back as Buffers
// (JSON.parse them when the callee returns JSON).

import { MoteError, call } from "./call.mjs";
import { dec, ms, parseList, payload } from "./wire.mjs";
import { INVOKE, INVOKE_ASYNC, AWAIT, MAP } from "./ops.mjs";

/** The outcome of one call in awaitAll, awaitAny or map: `output` (a
 * Buffer) on success, `error` (a MoteError) on failure, `pending` for a
 * call awaitAny found still running. */
export class Result {
  constructor({ output = null, error = null, pending = false } = {}) {
    this.output = output;
    this.error = error;
    this.pending = pending;
  }

  /** True when the call succeeded. */
  get ok() {
    return this.error === null && !this.pending;
  }
}

/** Calls function fn with event and resolves to its output; a failed
 * call rejects with the callee's code (function_error, timeout,
 * limit_exceeded, not_found, ...). */
export async function invoke(fn, event) {
  return call(INVOKE, fn, payload(event));
}

/** Starts function fn with event and resolves at once to its handle (the
 * child's invocation id); collect it with awaitAll or awaitAny. */
export async function invokeAsync(fn, event) {
  return (await call(INVOKE_ASYNC, fn, payload(event))).toString();
}

/** Waits until every call in handles has ended and resolves to a Result
 * for each, in order. timeoutMs (0: as long as the invocation may run)
 * passing first rejects with timeout; the calls go on. */
export function awaitAll(handles, timeoutMs = 0) {
  return awaitMode("all", handles, timeoutMs);
}

/** Waits until at least one call in handles has ended; calls still
 * running are pending Results. */
export function awaitAny(handles, timeoutMs = 0) {
  return awaitMode("any", handles, timeoutMs);
}

async function awaitMode(mode, handles, timeoutMs) {
  if (!Array.isArray(handles)) throw new TypeError("mote: handles is an array of handles");
  const t = ms(timeoutMs, "timeoutMs");
  return results(await call(AWAIT, mode, t.length ? t : "0", ...handles), handles.length);
}

/** Calls fn once per event, at most concurrency at a time (0: the
 * platform's default), and resolves to a Result per event, in event
 * order. One failed call does not fail the others: check each Result. */
export async function map(fn, events, concurrency = 0) {
  if (!Array.isArray(events)) throw new TypeError("mote: events is an array");
  if (concurrency < 0) throw new RangeError("mote: concurrency must not be negative");
  return results(await call(MAP, fn, dec(concurrency, "concurrency"), ...events.map(payload)), events.length);
}

/** results decodes two values per call: a code ("" success, "pending", or
 * an error code) and the output or message. */
function results(b, n) {
  const vals = parseList(b, 2 * n, true);
  const out = [];
  for (let i = 0; i < n; i++) {
    const code = vals[2 * i].toString();
    const data = vals[2 * i + 1];
    if (code === "") out.push(new Result({ output: data }));
    else if (code === "pending") out.push(new Result({ pending: true }));
    else out.push(new Result({ error: new MoteError(code, data.toString()) }));
  }
  return out;
}
