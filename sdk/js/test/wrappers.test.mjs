// Tests of the typed wrappers (kv, objects, eph, cache, coordination,
// flows): each is called against a tiny HTTP server on 127.0.0.1 that
// decodes the wire form and answers what the test scripts.
//
// That server stands in for Mote only to check encodings: what each
// wrapper sends (op, arguments) and how it decodes the answer. The ops
// themselves are tested against the real host in internal/baas and
// internal/flow, and the SDK end to end through the process runtime in
// internal/runtime/process.
import { after, before, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as mote from "../index.mjs";

const PREFIX = "/2018-06-01/mote/call/";
let server;
let calls = [];
let replies = [];

before(async () => {
  server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      let status = 404;
      let body = Buffer.from('{"error":"no route","code":"not_found"}');
      if (req.method === "POST" && req.url.startsWith(PREFIX)) {
        calls.push({
          op: req.url.slice(PREFIX.length),
          args: mote.decodeArgs(Buffer.concat(chunks)).map((a) => Buffer.from(a)),
          id: req.headers["lambda-runtime-aws-request-id"],
        });
        [status, body] = replies.shift() || [200, Buffer.alloc(0)];
      }
      res.writeHead(status, { "Content-Length": body.length });
      res.end(body);
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  process.env.AWS_LAMBDA_RUNTIME_API = `127.0.0.1:${server.address().port}`;
  mote.setCurrent("req-1");
});

after(() => {
  mote.setCurrent("");
  server.closeAllConnections();
  server.close();
});

beforeEach(() => {
  calls = [];
  replies = [];
});

/** enc is the host's list encoding of vals. */
const enc = (...vals) => mote.encodeArgs(...vals);
const ok = (body = "") => [200, Buffer.from(body)];
const fail = (code, message, status = 400) => [status, Buffer.from(JSON.stringify({ error: message, code }))];
const b = (...vals) => vals.map((v) => Buffer.from(v));

/** sent returns the one call made since the last check as {op, args}. */
function sent() {
  assert.equal(calls.length, 1, JSON.stringify(calls));
  const { op, args, id } = calls.pop();
  assert.equal(id, "req-1");
  return { op, args };
}

const EPOCH_MS = 1700000000123;

// Each case: name, the call, the host's reply, the op and args it must
// send, and what it must resolve to.
const cases = [
  ["kv.get", () => mote.kv.get("users", "ada"), ok("v1"), "kv.get", b("users", "ada"), Buffer.from("v1")],
  ["kv.getVersion", () => mote.kv.getVersion("users", "ada"), ok(enc("v1", "42")), "kv.getv", b("users", "ada"),
    { value: Buffer.from("v1"), version: 42 }],
  ["kv.put", () => mote.kv.put("users", "ada", "héllo"), ok("7"), "kv.put", b("users", "ada", "héllo", "", ""), 7],
  ["kv.put options", () => mote.kv.put("u", "k", Uint8Array.of(0, 255), { ttlMs: 1500, durability: mote.BUFFERED }),
    ok("8"), "kv.put", b("u", "k", [0, 255], "1500", "buffered"), 8],
  ["kv.put ttl rounds up", () => mote.kv.put("u", "k", "v", { ttlMs: 1.2 }), ok("9"), "kv.put",
    b("u", "k", "v", "2", ""), 9],
  ["kv.delete", () => mote.kv.delete("u", "k"), ok(), "kv.delete", b("u", "k", ""), undefined],
  ["kv.delete durable", () => mote.kv.delete("u", "k", { durability: "durable" }), ok(), "kv.delete",
    b("u", "k", "durable"), undefined],
  ["kv.cas", () => mote.kv.cas("u", "k", 0, "v", { ttlMs: 2000 }), ok("10"), "kv.cas", b("u", "k", "0", "v", "2000", ""), 10],
  ["kv.cas bigint", () => mote.kv.cas("u", "k", 2n ** 60n, "v"), ok("11"), "kv.cas",
    b("u", "k", "1152921504606846976", "v", "", ""), 11],
  ["kv.incr", () => mote.kv.incr("u", "hits"), ok("1"), "kv.incr", b("u", "hits", "1", ""), 1],
  ["kv.incr negative", () => mote.kv.incr("u", "hits", -5), ok("-4"), "kv.incr", b("u", "hits", "-5", ""), -4],
  ["kv.list", () => mote.kv.list("u"), ok(enc("", "a", "b")), "kv.list", b("u", "", "", ""), { keys: ["a", "b"], next: "" }],
  ["kv.list page", () => mote.kv.list("u", "p/", "p/b", 2), ok(enc("p/d", "p/c", "p/d")), "kv.list",
    b("u", "p/", "p/b", "2"), { keys: ["p/c", "p/d"], next: "p/d" }],
  ["kv.batch", () => mote.kv.batch("u", [{ op: "put", key: "a", value: "1" }, { op: "delete", key: "b" }], "buffered"),
    ok(enc("11", "0")), "kv.batch", b("u", "buffered", "put", "a", "1", "delete", "b", ""), [11, 0]],
  ["kv.batch empty", () => mote.kv.batch("u", []), ok(), "kv.batch", b("u", ""), []],

  ["objects.put", () => mote.objects.put("img", "a.png", Buffer.from("PNG"), "image/png"), ok(enc("3", "ab12")),
    "obj.put", b("img", "a.png", "PNG", "image/png"), { size: 3, sha256: "ab12", contentType: "image/png" }],
  ["objects.get", () => mote.objects.get("img", "a.png"), ok("data"), "obj.get", b("img", "a.png"), Buffer.from("data")],
  ["objects.get range", () => mote.objects.get("img", "a.png", 10, 5), ok("12345"), "obj.get",
    b("img", "a.png", "10", "5"), Buffer.from("12345")],
  ["objects.getRange to end", () => mote.objects.getRange("img", "a.png", 10), ok("rest"), "obj.get",
    b("img", "a.png", "10", ""), Buffer.from("rest")],
  ["objects.head", () => mote.objects.head("img", "a.png"), ok(enc("4", "ab12", "image/png", String(EPOCH_MS))),
    "obj.head", b("img", "a.png"), { size: 4, sha256: "ab12", contentType: "image/png", modified: new Date(EPOCH_MS) }],
  ["objects.delete", () => mote.objects.delete("img", "a.png"), ok(), "obj.delete", b("img", "a.png"), undefined],
  ["objects.list", () => mote.objects.list("img", "a", "", 1000), ok(enc("x", "a.png")), "obj.list",
    b("img", "a", "", "1000"), { keys: ["a.png"], next: "x" }],

  ["eph.put", () => mote.eph.put("step", "1", 60000), ok(), "eph.put", b("step", "1", "60000"), undefined],
  ["eph.get", () => mote.eph.get("step"), ok("1"), "eph.get", b("step"), Buffer.from("1")],
  ["eph.delete", () => mote.eph.delete("step"), ok(), "eph.delete", b("step"), undefined],
  ["eph.list", () => mote.eph.list("s"), ok(enc("", "step")), "eph.list", b("s", "", ""), { keys: ["step"], next: "" }],

  ["cache.get", () => mote.cache.get("model"), ok("w"), "cache.get", b("model"), Buffer.from("w")],
  ["cache.get miss", () => mote.cache.get("model"), fail("not_found", "cache key not found", 404), "cache.get",
    b("model"), null],
  ["cache.put", () => mote.cache.put("model", "w", 250), ok(), "cache.put", b("model", "w", "250"), undefined],
  ["cache.put no ttl", () => mote.cache.put("model", "w"), ok(), "cache.put", b("model", "w", ""), undefined],
  ["cache.delete", () => mote.cache.delete("model"), ok(), "cache.delete", b("model"), undefined],

  ["counterAdd", () => mote.counterAdd("c", "visits"), ok("3"), "counter.add", b("c", "visits", "1"), 3],
  ["counterAdd delta", () => mote.counterAdd("c", "visits", 10), ok("13"), "counter.add", b("c", "visits", "10"), 13],
  ["counterGet", () => mote.counterGet("c", "visits"), ok("13"), "counter.get", b("c", "visits"), 13],
  ["barrierWait", () => mote.barrierWait("c", "stage", 3, 5000), ok("2"), "barrier.wait", b("c", "stage", "3", "5000"), 2],
  ["queuePush", () => mote.queuePush("q", "jobs", "a", Buffer.from("b")), ok("2"), "queue.push", b("q", "jobs", "a", "b"), 2],
  ["queuePop", () => mote.queuePop("q", "jobs"), ok("a"), "queue.pop", b("q", "jobs", ""), Buffer.from("a")],
  ["queuePop wait", () => mote.queuePop("q", "jobs", 2500), ok("a"), "queue.pop", b("q", "jobs", "2500"), Buffer.from("a")],
  ["queueLen", () => mote.queueLen("q", "jobs"), ok("0"), "queue.len", b("q", "jobs"), 0],
  ["signalPublish", () => mote.signalPublish("s", "go", "x"), ok("2"), "signal.publish", b("s", "go", "x"), 2],
  ["signalWait", () => mote.signalWait("s", "go", 1000), ok("x"), "signal.wait", b("s", "go", "1000"), Buffer.from("x")],

  ["invoke", () => mote.invoke("resize", { w: 10 }), ok('{"ok":true}'), "invoke", b("resize", '{"w":10}'),
    Buffer.from('{"ok":true}')],
  ["invoke bytes", () => mote.invoke("resize", Buffer.from([0, 1])), ok("out"), "invoke", b("resize", [0, 1]),
    Buffer.from("out")],
  ["invoke string", () => mote.invoke("echo", "hi"), ok("hi"), "invoke", b("echo", "hi"), Buffer.from("hi")],
  ["invoke nothing", () => mote.invoke("tick"), ok("null"), "invoke", b("tick", ""), Buffer.from("null")],
  ["invokeAsync", () => mote.invokeAsync("thumb", [1, 2]), ok("18eb6b000000000000000001"), "invoke_async",
    b("thumb", "[1,2]"), "18eb6b000000000000000001"],
  ["awaitAll", () => mote.awaitAll(["h1", "h2"]), ok(enc("", "out1", "function_error", "boom")), "await",
    b("all", "0", "h1", "h2"),
    [new mote.Result({ output: Buffer.from("out1") }), new mote.Result({ error: new mote.MoteError("function_error", "boom") })]],
  ["awaitAny", () => mote.awaitAny(["h1", "h2"], 1500), ok(enc("pending", "", "", "out2")), "await",
    b("any", "1500", "h1", "h2"), [new mote.Result({ pending: true }), new mote.Result({ output: Buffer.from("out2") })]],
  ["map", () => mote.map("score", [{ id: 1 }, "raw", Buffer.from([1])], 8), ok(enc("", "1", "timeout", "too slow", "", "3")),
    "map", b("score", "8", '{"id":1}', "raw", [1]),
    [
      new mote.Result({ output: Buffer.from("1") }),
      new mote.Result({ error: new mote.MoteError("timeout", "too slow") }),
      new mote.Result({ output: Buffer.from("3") }),
    ]],
  ["map empty", () => mote.map("score", []), ok(), "map", b("score", "0"), []],
];

for (const [name, fn, reply, wantOp, wantArgs, want] of cases) {
  test(`wrapper ${name}`, async () => {
    replies.push(reply);
    const got = await fn();
    const { op, args } = sent();
    assert.equal(op, wantOp);
    assert.deepEqual(args, wantArgs);
    assert.deepEqual(got, want);
  });
}

test("lease acquire, renew, release", async () => {
  replies.push(ok(enc("tok-1", String(EPOCH_MS))), ok(String(EPOCH_MS + 1000)), ok());
  const lease = await mote.leaseAcquire("l", "leader", 10000, 500);
  assert.deepEqual(sent(), { op: "lease.acquire", args: b("l", "leader", "10000", "500") });
  assert.deepEqual([lease.token, lease.expires], ["tok-1", new Date(EPOCH_MS)]);
  await mote.leaseRenew(lease, 30000);
  assert.deepEqual(sent(), { op: "lease.renew", args: b("l", "leader", "tok-1", "30000") });
  assert.deepEqual(lease.expires, new Date(EPOCH_MS + 1000));
  await mote.leaseRelease(lease);
  assert.deepEqual(sent(), { op: "lease.release", args: b("l", "leader", "tok-1") });
});

test("host errors reject with their code", async () => {
  const errCases = [
    [() => mote.kv.get("u", "missing"), fail("not_found", "key not found", 404), "not_found", mote.isNotFound],
    [() => mote.kv.cas("u", "k", 3, "v"), fail("conflict", "stale version", 409), "conflict", mote.isConflict],
    [() => mote.queuePop("q", "j", 1), fail("timeout", "no item", 504), "timeout", mote.isTimeout],
    [() => mote.invoke("f", {}), fail("function_error", "TypeError: x", 502), "function_error", null],
    [() => mote.cache.get("k"), fail("forbidden", "no", 403), "forbidden", null],
    [() => mote.kv.get("u", "k"), [500, Buffer.from("not json")], "internal", null],
  ];
  for (const [fn, reply, code, pred] of errCases) {
    replies.push(reply);
    await assert.rejects(fn(), (e) => e instanceof mote.MoteError && e.code === code && (!pred || pred(e)));
    sent();
  }
  assert.equal(mote.isNotFound(new Error("not_found")), false);
});

test("malformed results reject with internal", async () => {
  const badCases = [
    [() => mote.kv.put("u", "k", "v"), ok("seven")],
    [() => mote.kv.getVersion("u", "k"), ok(enc("v"))],
    [() => mote.kv.list("u"), ok(Buffer.from([5, 97, 98]))],
    [() => mote.objects.head("b", "k"), ok(enc("1", "2"))],
    [() => mote.awaitAll(["h1"]), ok(enc("", "a", "", "b"))],
    [() => mote.map("f", ["a", "b"]), ok(enc("", "a"))],
  ];
  for (const [fn, reply] of badCases) {
    replies.push(reply);
    await assert.rejects(fn(), (e) => e instanceof mote.MoteError && e.code === "internal");
    sent();
  }
});

test("bad arguments reject before anything is sent", async () => {
  const badArgs = [
    [() => mote.kv.put("u", "k", 3), TypeError],
    [() => mote.kv.put("u", "k", "v", { ttlMs: -1 }), RangeError],
    [() => mote.kv.put("u", "k", "v", { ttlMs: "1s" }), TypeError],
    [() => mote.kv.put("u", "k", "v", { durability: "fast" }), RangeError],
    [() => mote.kv.incr("u", "k", 1.5), TypeError],
    [() => mote.kv.batch("u", [{ op: "upsert", key: "k", value: "v" }]), RangeError],
    [() => mote.queuePush("q", "j"), TypeError],
    [() => mote.awaitAll("h1"), TypeError],
    [() => mote.map("f", ["a"], -1), RangeError],
    [() => mote.invoke("f", () => 1), TypeError],
    [() => mote.objects.get("b", "k", 0.5), TypeError],
  ];
  for (const [fn, want] of badArgs) {
    await assert.rejects(fn(), want);
  }
  assert.deepEqual(calls, []);
});

test("a second copy of the SDK calls for the same invocation", async (t) => {
  // As when a function bundles node_modules/mote but runs under the
  // platform's bootstrap: the copy's modules are distinct instances.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mote-sdk-copy-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const here = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
  for (const f of fs.readdirSync(here).filter((f) => f.endsWith(".mjs"))) fs.copyFileSync(path.join(here, f), path.join(dir, f));
  const copy = await import(pathToFileURL(path.join(dir, "index.mjs")).href);
  assert.notEqual(copy.call, mote.call);
  replies.push(ok("v"));
  assert.deepEqual(await copy.kv.get("u", "k"), Buffer.from("v"));
  assert.deepEqual(sent(), { op: "kv.get", args: b("u", "k") });
});
