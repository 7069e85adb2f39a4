// HTTP functions in the Workers style: `export async function fetch(request)`
// (or `export default { fetch }`) taking a web Request and returning a
// web Response, the classes Node has built in. The function is deployed
// with "http": true; Mote sends the request as the Lambda payload format
// 2.0 event, and fetchHandler turns it into a Request and the Response
// back into a 2.0 response. A response of type text/event-stream is
// streamed on Mote (each chunk of its body reaches the client as the
// function produces it, posted over the Runtime API in Lambda's streaming
// mode); any other is read whole, then sent.

import http from "node:http";
import { apiAddr } from "./call.mjs";

/** STREAMED is what a handler returns when it has posted its response itself. */
export const STREAMED = Symbol.for("mote.streamed");

const STREAM_TYPE = "application/vnd.awslambda.http-integration-response";

/**
 * Wraps a fetch function as a Runtime API handler.
 * @param {(request: Request, env: object, ctx: object) => Response|Promise<Response>} fetchFn
 */
export function fetchHandler(fetchFn) {
  return async (event, context) => {
    const request = toRequest(event);
    const response = await fetchFn(request, process.env, context);
    if (!(response instanceof Response)) {
      throw new TypeError("fetch must return a Response");
    }
    const type = response.headers.get("content-type") || "";
    if (type.startsWith("text/event-stream") && response.body && process.env.MOTE_INSTANCE && context && context.awsRequestId) {
      await streamResponse(response, context.awsRequestId);
      return STREAMED;
    }
    return fromResponse(response);
  };
}

/** toRequest builds a web Request from a payload format 2.0 event. */
export function toRequest(event) {
  const ctx = (event && event.requestContext) || {};
  const http = ctx.http || {};
  const headers = new Headers();
  for (const [k, v] of Object.entries(event.headers || {})) headers.set(k, v);
  if (event.cookies && event.cookies.length) headers.set("cookie", event.cookies.join("; "));
  const host = headers.get("host") || ctx.domainName || "localhost";
  const proto = headers.get("x-forwarded-proto") || "http";
  const url = `${proto}://${host}${event.rawPath || "/"}${event.rawQueryString ? "?" + event.rawQueryString : ""}`;
  const method = (http.method || "GET").toUpperCase();
  let body;
  if (event.body && method !== "GET" && method !== "HEAD") {
    body = event.isBase64Encoded ? Buffer.from(event.body, "base64") : event.body;
  }
  return new Request(url, { method, headers, body });
}

/** fromResponse reads a web Response into a payload format 2.0 response. */
export async function fromResponse(response) {
  const headers = {};
  const cookies = typeof response.headers.getSetCookie === "function" ? response.headers.getSetCookie() : [];
  for (const [k, v] of response.headers) {
    if (k.toLowerCase() === "set-cookie") continue;
    headers[k] = v;
  }
  const buf = Buffer.from(await response.arrayBuffer());
  const text = buf.toString("utf8");
  const binary = !Buffer.from(text, "utf8").equals(buf);
  return {
    statusCode: response.status,
    headers,
    cookies,
    body: binary ? buf.toString("base64") : text,
    isBase64Encoded: binary,
  };
}

/** streamResponse posts response to the Runtime API chunk by chunk, in
 * Lambda's streaming mode: a JSON prelude (status, headers, cookies), eight
 * NUL bytes, then the body as it is read. */
export function streamResponse(response, id) {
  const { host, port } = apiAddr();
  const headers = {};
  for (const [k, v] of response.headers) {
    if (k.toLowerCase() !== "set-cookie") headers[k] = v;
  }
  const cookies = typeof response.headers.getSetCookie === "function" ? response.headers.getSetCookie() : [];
  const prelude = JSON.stringify({ statusCode: response.status, headers, cookies }) + "\0".repeat(8);
  return new Promise((resolve, reject) => {
    const req = http.request({
      host, port, method: "POST",
      path: `/2018-06-01/runtime/invocation/${id}/response`,
      headers: { "Content-Type": STREAM_TYPE, "Lambda-Runtime-Function-Response-Mode": "streaming", "Transfer-Encoding": "chunked" },
    }, (res) => {
      res.resume();
      res.on("end", () => (res.statusCode === 202 ? resolve() : reject(new Error(`streamed response refused: ${res.statusCode}`))));
    });
    req.on("error", reject);
    req.setNoDelay(true);
    req.write(prelude);
    (async () => {
      for await (const chunk of response.body) req.write(chunk);
      req.end();
    })().catch((err) => req.destroy(err));
  });
}
