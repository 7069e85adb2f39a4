// hello-fetch: a Workers-style HTTP function in JavaScript: a fetch
// export taking a web Request and returning a web Response.
//
//   mote deploy hello-fetch examples/hello-fetch    (mote.json: "http": true)
//   mote route add '/fetch/*' hello-fetch --public
//   curl -i localhost:8080/fetch/hello?name=ada
export async function fetch(request) {
  const url = new URL(request.url);
  if (url.pathname === "/missing") {
    return new Response("nothing here", { status: 404, headers: { "content-type": "text/plain" } });
  }
  if (url.pathname === "/events") {
    // Server-sent events, streamed: each reaches the client when enqueued.
    const enc = new TextEncoder();
    const body = new ReadableStream({
      async start(controller) {
        controller.enqueue(enc.encode("data: 1\n\n"));
        await new Promise((r) => setTimeout(r, 1500)); // the work the next event reports on
        controller.enqueue(enc.encode("data: 2\n\n"));
        controller.close();
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  }
  if (url.pathname === "/bytes") {
    return new Response(new Uint8Array([0, 1, 254, 255]), { headers: { "content-type": "application/octet-stream" } });
  }
  const headers = new Headers({ "content-type": "application/json" });
  headers.append("set-cookie", "a=1");
  headers.append("set-cookie", "b=2");
  return new Response(JSON.stringify({
    method: request.method,
    path: url.pathname,
    name: url.searchParams.get("name"),
    body: await request.text(),
    agent: request.headers.get("user-agent"),
  }), { status: 200, headers });
}
