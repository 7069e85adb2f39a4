// Tests of the JavaScript SDK: the argument encoding (shared with every
// runtime, see internal/host) and the Context. The Runtime API loop is
// exercised end to end by internal/runtime/process's tests, against Mote.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Context, MoteError, call, decodeArgs, decodeEvent, encodeArgs, encodeResult, result } from "../index.mjs";

test("args round trip", () => {
  const cases = [[], [""], ["a"], ["key", "", "v".repeat(300)], [Buffer.from([0, 255])]];
  for (const args of cases) {
    const got = decodeArgs(encodeArgs(...args)).map((b) => Buffer.from(b));
    const want = args.map((a) => Buffer.from(a));
    assert.deepEqual(got, want);
  }
});

test("wire form matches Go's uvarint", () => {
  assert.deepEqual([...encodeArgs("x".repeat(300)).subarray(0, 2)], [0xac, 0x02]);
});

test("malformed args", () => {
  for (const bad of [Buffer.from([5, 97]), Buffer.from([0x80])]) {
    assert.throws(() => decodeArgs(bad), RangeError);
  }
  assert.throws(() => encodeArgs(3), TypeError);
});

test("context from headers", () => {
  const ctx = new Context({
    "lambda-runtime-aws-request-id": "id-1",
    "lambda-runtime-deadline-ms": String(Date.now() + 5000),
    "lambda-runtime-trace-id": "Root=r-1;Parent=p-1;Sampled=0",
    "mote-depth": "2",
  });
  assert.deepEqual([ctx.awsRequestId, ctx.rootId, ctx.parentId, ctx.depth], ["id-1", "r-1", "p-1", 2]);
  const left = ctx.getRemainingTimeInMillis();
  assert.ok(left > 0 && left <= 5000, `remaining ${left}`);
});

test("call outside an invocation", async () => {
  await assert.rejects(call("kv.get", "k"), (e) => e instanceof MoteError && e.code === "bad_request");
});

test("results and events", () => {
  assert.equal(encodeResult({ a: 1 }).toString(), '{"a":1}');
  assert.equal(encodeResult("s").toString(), "s");
  assert.equal(encodeResult(undefined).toString(), "null");
  assert.equal(decodeEvent(Buffer.alloc(0)), null);
  assert.deepEqual(decodeEvent(Buffer.from('{"a":1}')), { a: 1 });
  assert.deepEqual(decodeEvent(Buffer.from("raw")), Buffer.from("raw"));
});

test("result: a result over the limit is the invocation's error", async () => {
  const limit = 6 << 20;
  const cases = [
    [async () => "ok", "response", null],
    [async () => "y".repeat(limit), "response", null],
    [async () => "y".repeat(limit + 1), "error", "Function.ResponseSizeTooLarge"],
    [async () => { throw new RangeError("x".repeat(2 * limit)); }, "error", "RangeError"],
  ];
  for (const [handler, wantKind, wantType] of cases) {
    const [kind, body] = await result(handler, Buffer.alloc(0), null);
    assert.equal(kind, wantKind);
    assert.ok(Buffer.byteLength(body) <= limit);
    if (wantType) assert.equal(JSON.parse(body).errorType, wantType);
  }
});
