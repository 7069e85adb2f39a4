// HTTP functions in the Workers style: `export async function fetch(request)`
// (or `export default { fetch }`) taking a web Request and returning a
// web Response, the classes Node has built in. The function is deployed
// with "http": true; Mote sends the request as the Lambda payload format
// 2.0 event, and fetchHandler turns it into a Request and the Response
// back into a 2.0 response. The Response body is read whole before it is
// sent (a ReadableStream body works, but is not streamed yet).

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
