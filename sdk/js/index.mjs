// Mote's JavaScript SDK for process functions (Node 20, standard library
// only). A function is an ES module exporting
//
//   export async function handler(event, context) { ... }
//
// run by the bootstrap, which speaks the AWS Lambda Runtime API that Mote
// serves:  node bootstrap.mjs handler.handler
//
// `log(msg)` writes a line to the invocation's log, as console.log does.
//
// The host surface, as in the Go SDK (docs/sdk-js.md): the namespaces kv,
// objects, eph and cache; counterAdd, barrierWait, queuePush, queuePop,
// signalPublish, signalWait, leaseAcquire, ...; invoke, invokeAsync,
// awaitAll, awaitAny and map; and `call(op, ...args)` for any op, raw.
// Every one is async; a failed host call rejects with a MoteError whose
// `code` is the host's stable error code. Durations are milliseconds.

import { MoteError, call, decodeArgs, encodeArgs, request, setCurrent } from "./call.mjs";
import { STREAMED } from "./http.mjs";

export { MoteError, call, decodeArgs, encodeArgs, request, setCurrent };
export * as kv from "./kv.mjs";
export * as objects from "./objects.mjs";
export * as eph from "./eph.mjs";
export * as cache from "./cache.mjs";
export * from "./coord.mjs";
export * from "./flow.mjs";
export { fetchHandler, fromResponse, toRequest } from "./http.mjs";
export { BUFFERED, DURABLE, isConflict, isNotFound, isTimeout } from "./wire.mjs";

/** Writes one line to the invocation's log. */
export function log(msg) {
  process.stderr.write(String(msg).replace(/\n$/, "") + "\n");
}

/** The invocation being served, with Lambda's attribute names. */
export class Context {
  constructor(headers) {
    this.awsRequestId = headers["lambda-runtime-aws-request-id"] || "";
    this.invokedFunctionArn = headers["lambda-runtime-invoked-function-arn"] || "";
    this.deadlineMs = Number(headers["lambda-runtime-deadline-ms"] || 0);
    this.functionName = process.env.AWS_LAMBDA_FUNCTION_NAME || "";
    this.functionVersion = process.env.AWS_LAMBDA_FUNCTION_VERSION || "";
    this.memoryLimitInMB = process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE || "";
    this.logGroupName = process.env.AWS_LAMBDA_LOG_GROUP_NAME || "";
    this.logStreamName = process.env.AWS_LAMBDA_LOG_STREAM_NAME || "";
    const trace = Object.fromEntries(
      (headers["lambda-runtime-trace-id"] || "").split(";").filter((p) => p.includes("=")).map((p) => p.split("=", 2)),
    );
    this.rootId = trace.Root || this.awsRequestId;
    this.parentId = trace.Parent || "";
    this.depth = Number(headers["mote-depth"] || 0);
  }
  getRemainingTimeInMillis() {
    return Math.max(0, this.deadlineMs - Date.now());
  }
  call(op, ...args) {
    return call(op, ...args);
  }
}

export function errorBody(err) {
  return JSON.stringify({
    errorMessage: err && err.message !== undefined ? err.message : String(err),
    errorType: (err && err.name) || "Error",
    stackTrace: err && err.stack ? String(err.stack).split("\n") : [],
  });
}

export function decodeEvent(body) {
  if (body.length === 0) return null;
  try {
    return JSON.parse(body.toString());
  } catch {
    return body;
  }
}

export function encodeResult(v) {
  if (v instanceof Uint8Array) return Buffer.from(v);
  if (typeof v === "string") return Buffer.from(v);
  return Buffer.from(JSON.stringify(v === undefined ? null : v));
}

/** Runs the Runtime API loop, calling `handler(event, context)` for each
 * event. Never resolves. */
// The largest response the platform takes (AWS Lambda's 6 MiB unless Mote
// says otherwise). A larger result is reported as that invocation's error,
// as Lambda does, instead of being sent and refused with the connection.
const MAX_RESPONSE = Number(process.env.MOTE_MAX_RESPONSE) || 6 << 20;
const MAX_ERROR_MESSAGE = 64 << 10;

/** result runs the handler and returns [kind, body] to post: "response"
 * and its result, or "error" and the Runtime API's error JSON. */
export async function result(handler, event, ctx) {
  let out;
  try {
    const value = await handler(decodeEvent(event), ctx);
    if (value === STREAMED) return ["streamed", null]; // http.mjs posted it
    out = encodeResult(value);
  } catch (err) {
    let body = errorBody(err);
    if (Buffer.byteLength(body) > MAX_RESPONSE) {
      const msg = err && err.message !== undefined ? String(err.message) : String(err);
      body = JSON.stringify({ errorMessage: msg.slice(0, MAX_ERROR_MESSAGE), errorType: (err && err.name) || "Error" });
    }
    return ["error", body];
  }
  const size = Buffer.byteLength(out);
  if (size > MAX_RESPONSE) {
    return ["error", JSON.stringify({
      errorMessage: `Response payload size (${size} bytes) exceeded maximum allowed payload size (${MAX_RESPONSE} bytes).`,
      errorType: "Function.ResponseSizeTooLarge",
    })];
  }
  return ["response", out];
}

export async function start(handler) {
  for (;;) {
    const next = await request("GET", "/runtime/invocation/next");
    if (next.status !== 200) {
      log(`mote: runtime api next: status ${next.status}`);
      process.exit(1);
    }
    const ctx = new Context(next.headers);
    setCurrent(ctx.awsRequestId);
    let kind, out;
    try {
      [kind, out] = await result(handler, next.body, ctx);
    } finally {
      setCurrent("");
    }
    if (kind === "streamed") continue;
    try {
      await request("POST", `/runtime/invocation/${ctx.awsRequestId}/${kind}`, out, { "Content-Type": "application/json" });
    } catch (err) {
      // The platform has ended this invocation already (its deadline,
      // say): serve the next one.
      log(`mote: could not post the result of ${ctx.awsRequestId}: ${err.message}`);
    }
  }
}
