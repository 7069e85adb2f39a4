// Mote's JavaScript SDK for process functions (Node 20, standard library
// only). A function is an ES module exporting
//
//   export async function handler(event, context) { ... }
//
// run by the bootstrap, which speaks the AWS Lambda Runtime API that Mote
// serves:  node bootstrap.mjs handler.handler
//
// `call(op, ...args)` makes a host call (kv, invoke, ...) for the running
// invocation; `log(msg)` writes a line to its log, as console.log does.

import http from "node:http";

const API = "/2018-06-01";
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

/** A failed host call: `code` is one of Mote's stable error codes. */
export class MoteError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = "MoteError";
    this.code = code;
  }
}

/** Encodes host-call arguments: each as uvarint(len) then its bytes. */
export function encodeArgs(...args) {
  const parts = [];
  for (let a of args) {
    if (typeof a === "string") a = Buffer.from(a);
    else if (a instanceof Uint8Array) a = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    else throw new TypeError(`host call arguments are strings or bytes, not ${typeof a}`);
    let n = a.length;
    const len = [];
    while (n >= 0x80) {
      len.push((n & 0x7f) | 0x80);
      n = Math.floor(n / 128);
    }
    len.push(n);
    parts.push(Buffer.from(len), a);
  }
  return Buffer.concat(parts);
}

/** Decodes an argument list made by encodeArgs. */
export function decodeArgs(b) {
  const args = [];
  let i = 0;
  while (i < b.length) {
    let n = 0;
    let mul = 1;
    for (;;) {
      if (i >= b.length || mul > 2 ** 49) throw new RangeError("malformed argument list");
      const c = b[i++];
      n += (c & 0x7f) * mul;
      mul *= 128;
      if (c < 0x80) break;
    }
    if (i + n > b.length) throw new RangeError("malformed argument list");
    args.push(b.subarray(i, i + n));
    i += n;
  }
  return args;
}

function apiAddr() {
  const addr = process.env.AWS_LAMBDA_RUNTIME_API;
  if (!addr) throw new MoteError("unavailable", "AWS_LAMBDA_RUNTIME_API is not set");
  const i = addr.lastIndexOf(":");
  return { host: addr.slice(0, i), port: Number(addr.slice(i + 1)) };
}

/** request sends one Runtime API request and resolves {status, headers, body}. */
export function request(method, path, body, headers = {}) {
  const { host, port } = apiAddr();
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    if (body !== undefined) h["Content-Length"] = Buffer.byteLength(body);
    const req = http.request({ host, port, method, path: API + path, headers: h, agent }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

let current = "";

/** setCurrent records the invocation that host calls belong to (bootstrap use). */
export function setCurrent(id) {
  current = id;
}

/** Makes host call `op` for the running invocation: resolves to a Buffer or
 * rejects with a MoteError carrying the host's error code. */
export async function call(op, ...args) {
  if (!current) throw new MoteError("bad_request", "host call outside an invocation");
  const r = await request("POST", `/mote/call/${op}`, encodeArgs(...args), {
    "Lambda-Runtime-Aws-Request-Id": current,
  });
  if (r.status === 200) return r.body;
  let e;
  try {
    e = JSON.parse(r.body.toString());
  } catch {
    throw new MoteError("internal", `host call failed with status ${r.status}`);
  }
  throw new MoteError(e.code || "internal", e.error || "");
}

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
export async function start(handler) {
  for (;;) {
    const next = await request("GET", "/runtime/invocation/next");
    if (next.status !== 200) {
      log(`mote: runtime api next: status ${next.status}`);
      process.exit(1);
    }
    const ctx = new Context(next.headers);
    setCurrent(ctx.awsRequestId);
    let out;
    let path = `/runtime/invocation/${ctx.awsRequestId}/response`;
    try {
      out = encodeResult(await handler(decodeEvent(next.body), ctx));
    } catch (err) {
      out = errorBody(err);
      path = `/runtime/invocation/${ctx.awsRequestId}/error`;
    } finally {
      setCurrent("");
    }
    await request("POST", path, out, { "Content-Type": "application/json" });
  }
}
