// The host-call wire: the argument encoding every runtime shares (see
// internal/host) and the Runtime API requests that carry host calls for
// the running invocation. index.mjs re-exports all of it.

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

export function apiAddr() {
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

// The running invocation's id lives on globalThis under a registered
// symbol, so that a function importing another copy of this SDK (its own
// node_modules/mote, say, under the platform's bootstrap) still makes its
// host calls for the invocation the bootstrap is serving.
const CURRENT = Symbol.for("mote.invocation");

/** setCurrent records the invocation that host calls belong to (bootstrap use). */
export function setCurrent(id) {
  globalThis[CURRENT] = id;
}

/** Makes host call `op` for the running invocation: resolves to a Buffer or
 * rejects with a MoteError carrying the host's error code. */
export async function call(op, ...args) {
  const current = globalThis[CURRENT];
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
