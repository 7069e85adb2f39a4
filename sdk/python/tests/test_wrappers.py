"""Tests of the typed wrappers (kv, objects, eph, cache, coordination,
flows): each is called against a tiny HTTP server on 127.0.0.1 that
decodes the wire form and answers what the test scripts.

That server stands in for Mote only to check encodings: what each wrapper
sends (op, arguments) and how it decodes the answer. The ops themselves are
tested against the real host in internal/baas and internal/flow, and the
SDK end to end through the process runtime in internal/runtime/process."""

import datetime
import http.server
import json
import os
import sys
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import mote  # noqa: E402
from mote import _wire  # noqa: E402

CALL_PREFIX = "/2018-06-01/mote/call/"


class FakeHost(http.server.ThreadingHTTPServer):
    """Records host calls as (op, args, request id) and answers each with
    the next scripted (status, body)."""

    daemon_threads = True
    block_on_close = False

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.calls, self.replies = [], []
        self.lock = threading.Lock()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection expects
    disable_nagle_algorithm = True  # else each reply waits on a delayed ACK

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        srv = self.server
        with srv.lock:
            if not self.path.startswith(CALL_PREFIX):
                status, reply = 404, b'{"error":"no route","code":"not_found"}'
            else:
                srv.calls.append((self.path[len(CALL_PREFIX):], mote.decode_args(body),
                                  self.headers.get("Lambda-Runtime-Aws-Request-Id")))
                status, reply = srv.replies.pop(0) if srv.replies else (200, b"")
        self.send_response(status)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


def setUpModule():
    global host, thread
    host = FakeHost()
    thread = threading.Thread(target=host.serve_forever, args=(0.02,), daemon=True)
    thread.start()


def tearDownModule():
    host.shutdown()
    host.server_close()


def enc(*vals):
    """The host's list encoding of vals (str as UTF-8)."""
    return mote.encode_args(*vals)


def ok(body=b""):
    return (200, body)


def fail(code, message, status=400):
    return (status, json.dumps({"error": message, "code": code}).encode())


EPOCH_MS = 1700000000123
EPOCH_DT = datetime.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=datetime.timezone.utc)


class HostTest(unittest.TestCase):
    def setUp(self):
        self.saved_api = os.environ.get("AWS_LAMBDA_RUNTIME_API")
        os.environ["AWS_LAMBDA_RUNTIME_API"] = "127.0.0.1:%d" % host.server_address[1]
        mote._state.conn = None
        mote._current["id"] = "req-1"
        with host.lock:
            host.calls.clear()
            host.replies.clear()

    def tearDown(self):
        mote._current["id"] = ""
        if mote._state.conn is not None:
            mote._state.conn.close()
            mote._state.conn = None
        if self.saved_api is None:
            os.environ.pop("AWS_LAMBDA_RUNTIME_API", None)
        else:
            os.environ["AWS_LAMBDA_RUNTIME_API"] = self.saved_api

    def reply(self, *replies):
        with host.lock:
            host.replies.extend(replies)

    def sent(self):
        """Returns the one call made since setUp as (op, [args as bytes])."""
        with host.lock:
            self.assertEqual(len(host.calls), 1, host.calls)
            op, args, rid = host.calls.pop()
        self.assertEqual(rid, "req-1")
        return op, args


def b(*vals):
    return [v.encode() if isinstance(v, str) else v for v in vals]


# Each case: name, the call, the host's reply, the op and args it must
# send, and what it must return.
CASES = [
    ("kv.get", lambda: mote.kv.get("users", "ada"), ok(b"v1"),
     "kv.get", b("users", "ada"), b"v1"),
    ("kv.get_version", lambda: mote.kv.get_version("users", "ada"), ok(enc(b"v1", b"42")),
     "kv.getv", b("users", "ada"), (b"v1", 42)),
    ("kv.put", lambda: mote.kv.put("users", "ada", "héllo"), ok(b"7"),
     "kv.put", b("users", "ada", "héllo", "", ""), 7),
    ("kv.put ttl", lambda: mote.kv.put("u", "k", b"\x00\xff", ttl=1.5, durability=mote.BUFFERED), ok(b"8"),
     "kv.put", b("u", "k", b"\x00\xff", "1500", "buffered"), 8),
    ("kv.put ttl rounds up", lambda: mote.kv.put("u", "k", "v", ttl=datetime.timedelta(microseconds=1001)),
     ok(b"9"), "kv.put", b("u", "k", "v", "2", ""), 9),
    ("kv.put 0.1 s", lambda: mote.kv.put("u", "k", "v", ttl=0.1), ok(b"9"),
     "kv.put", b("u", "k", "v", "100", ""), 9),
    ("kv.delete", lambda: mote.kv.delete("u", "k"), ok(),
     "kv.delete", b("u", "k", ""), None),
    ("kv.delete durable", lambda: mote.kv.delete("u", "k", durability="durable"), ok(),
     "kv.delete", b("u", "k", "durable"), None),
    ("kv.cas", lambda: mote.kv.cas("u", "k", 0, "v", ttl=2), ok(b"10"),
     "kv.cas", b("u", "k", "0", "v", "2000", ""), 10),
    ("kv.incr", lambda: mote.kv.incr("u", "hits"), ok(b"1"),
     "kv.incr", b("u", "hits", "1", ""), 1),
    ("kv.incr negative", lambda: mote.kv.incr("u", "hits", -5), ok(b"-4"),
     "kv.incr", b("u", "hits", "-5", ""), -4),
    ("kv.list", lambda: mote.kv.list("u"), ok(enc("", "a", "b")),
     "kv.list", b("u", "", "", ""), (["a", "b"], "")),
    ("kv.list page", lambda: mote.kv.list("u", "p/", "p/b", 2), ok(enc("p/d", "p/c", "p/d")),
     "kv.list", b("u", "p/", "p/b", "2"), (["p/c", "p/d"], "p/d")),
    ("kv.batch", lambda: mote.kv.batch("u", [("put", "a", "1"), ("delete", "b"),
                                             {"op": "put", "key": "c", "value": b"3"}], "buffered"),
     ok(enc("11", "0", "12")),
     "kv.batch", b("u", "buffered", "put", "a", "1", "delete", "b", "", "put", "c", "3"), [11, 0, 12]),
    ("kv.batch empty", lambda: mote.kv.batch("u", []), ok(),
     "kv.batch", b("u", ""), []),

    ("objects.put", lambda: mote.objects.put("img", "a.png", b"\x89PNG", "image/png"), ok(enc("4", "ab12")),
     "obj.put", b("img", "a.png", b"\x89PNG", "image/png"), mote.objects.ObjectInfo(4, "ab12", "image/png")),
    ("objects.get", lambda: mote.objects.get("img", "a.png"), ok(b"data"),
     "obj.get", b("img", "a.png"), b"data"),
    ("objects.get range", lambda: mote.objects.get("img", "a.png", 10, 5), ok(b"12345"),
     "obj.get", b("img", "a.png", "10", "5"), b"12345"),
    ("objects.get_range to end", lambda: mote.objects.get_range("img", "a.png", 10), ok(b"rest"),
     "obj.get", b("img", "a.png", "10", ""), b"rest"),
    ("objects.head", lambda: mote.objects.head("img", "a.png"),
     ok(enc("4", "ab12", "image/png", str(EPOCH_MS))),
     "obj.head", b("img", "a.png"), mote.objects.ObjectInfo(4, "ab12", "image/png", EPOCH_DT)),
    ("objects.delete", lambda: mote.objects.delete("img", "a.png"), ok(),
     "obj.delete", b("img", "a.png"), None),
    ("objects.list", lambda: mote.objects.list("img", "a", limit=1000), ok(enc("x", "a.png")),
     "obj.list", b("img", "a", "", "1000"), (["a.png"], "x")),

    ("eph.put", lambda: mote.eph.put("step", "1", ttl=60), ok(),
     "eph.put", b("step", "1", "60000"), None),
    ("eph.get", lambda: mote.eph.get("step"), ok(b"1"),
     "eph.get", b("step"), b"1"),
    ("eph.delete", lambda: mote.eph.delete("step"), ok(),
     "eph.delete", b("step"), None),
    ("eph.list", lambda: mote.eph.list("s"), ok(enc("", "step")),
     "eph.list", b("s", "", ""), (["step"], "")),

    ("cache.get", lambda: mote.cache.get("model"), ok(b"weights"),
     "cache.get", b("model"), b"weights"),
    ("cache.get miss", lambda: mote.cache.get("model"), fail("not_found", "cache key not found", 404),
     "cache.get", b("model"), None),
    ("cache.put", lambda: mote.cache.put("model", b"w", ttl=0.25), ok(),
     "cache.put", b("model", "w", "250"), None),
    ("cache.put no ttl", lambda: mote.cache.put("model", "w"), ok(),
     "cache.put", b("model", "w", ""), None),
    ("cache.delete", lambda: mote.cache.delete("model"), ok(),
     "cache.delete", b("model"), None),

    ("counter_add", lambda: mote.counter_add("c", "visits"), ok(b"3"),
     "counter.add", b("c", "visits", "1"), 3),
    ("counter_add delta", lambda: mote.counter_add("c", "visits", 10), ok(b"13"),
     "counter.add", b("c", "visits", "10"), 13),
    ("counter_get", lambda: mote.counter_get("c", "visits"), ok(b"13"),
     "counter.get", b("c", "visits"), 13),
    ("barrier_wait", lambda: mote.barrier_wait("c", "stage", 3, 5), ok(b"2"),
     "barrier.wait", b("c", "stage", "3", "5000"), 2),
    ("queue_push", lambda: mote.queue_push("q", "jobs", "a", b"b"), ok(b"2"),
     "queue.push", b("q", "jobs", "a", "b"), 2),
    ("queue_pop", lambda: mote.queue_pop("q", "jobs"), ok(b"a"),
     "queue.pop", b("q", "jobs", ""), b"a"),
    ("queue_pop wait", lambda: mote.queue_pop("q", "jobs", timeout=2.5), ok(b"a"),
     "queue.pop", b("q", "jobs", "2500"), b"a"),
    ("queue_len", lambda: mote.queue_len("q", "jobs"), ok(b"0"),
     "queue.len", b("q", "jobs"), 0),
    ("signal_publish", lambda: mote.signal_publish("s", "go", "x"), ok(b"2"),
     "signal.publish", b("s", "go", "x"), 2),
    ("signal_wait", lambda: mote.signal_wait("s", "go", 1), ok(b"x"),
     "signal.wait", b("s", "go", "1000"), b"x"),

    ("invoke", lambda: mote.invoke("resize", {"w": 10}), ok(b'{"ok":true}'),
     "invoke", b("resize", '{"w":10}'), b'{"ok":true}'),
    ("invoke bytes", lambda: mote.invoke("resize", b"\x00img"), ok(b"out"),
     "invoke", b("resize", b"\x00img"), b"out"),
    ("invoke str", lambda: mote.invoke("echo", "hi"), ok(b"hi"),
     "invoke", b("echo", "hi"), b"hi"),
    ("invoke none", lambda: mote.invoke("tick"), ok(b"null"),
     "invoke", b("tick", ""), b"null"),
    ("invoke_async", lambda: mote.invoke_async("thumb", [1, 2]), ok(b"18eb6b000000000000000001"),
     "invoke_async", b("thumb", "[1,2]"), "18eb6b000000000000000001"),
    ("await_all", lambda: mote.await_all(["h1", "h2"]),
     ok(enc("", "out1", "function_error", "boom")),
     "await", b("all", "0", "h1", "h2"),
     [mote.Result(output=b"out1"), mote.Result(error=mote.MoteError("function_error", "boom"))]),
    ("await_any", lambda: mote.await_any(["h1", "h2"], timeout=1.5),
     ok(enc("pending", "", "", "out2")),
     "await", b("any", "1500", "h1", "h2"), [mote.Result(pending=True), mote.Result(output=b"out2")]),
    ("map", lambda: mote.map("score", [{"id": 1}, "raw", b"\x01"], 8),
     ok(enc("", "1", "timeout", "too slow", "", "3")),
     "map", b("score", "8", '{"id":1}', "raw", b"\x01"),
     [mote.Result(output=b"1"), mote.Result(error=mote.MoteError("timeout", "too slow")),
      mote.Result(output=b"3")]),
    ("map empty", lambda: mote.map("score", []), ok(),
     "map", b("score", "0"), []),
]


class WrapperTest(HostTest):
    def test_wrappers(self):
        for name, fn, reply, want_op, want_args, want in CASES:
            with self.subTest(name):
                self.reply(reply)
                got = fn()
                op, args = self.sent()
                self.assertEqual(op, want_op)
                self.assertEqual(args, want_args)
                self.assertEqual(got, want)

    def test_lease(self):
        self.reply(ok(enc("tok-1", str(EPOCH_MS))), ok(str(EPOCH_MS + 1000).encode()), ok())
        lease = mote.lease_acquire("l", "leader", 10, wait=0.5)
        self.assertEqual(self.sent(), ("lease.acquire", b("l", "leader", "10000", "500")))
        self.assertEqual((lease.token, lease.expires), ("tok-1", EPOCH_DT))
        mote.lease_renew(lease, 30)
        self.assertEqual(self.sent(), ("lease.renew", b("l", "leader", "tok-1", "30000")))
        self.assertEqual(lease.expires, EPOCH_DT + datetime.timedelta(seconds=1))
        mote.lease_release(lease)
        self.assertEqual(self.sent(), ("lease.release", b("l", "leader", "tok-1")))

    def test_lease_context_manager(self):
        self.reply(ok(enc("tok-2", str(EPOCH_MS))), ok())
        with mote.lease_acquire("l", "leader", 10) as lease:
            self.assertEqual(self.sent(), ("lease.acquire", b("l", "leader", "10000", "")))
        self.assertEqual(self.sent(), ("lease.release", b("l", "leader", lease.token)))

    def test_host_errors(self):
        cases = [
            (lambda: mote.kv.get("u", "missing"), fail("not_found", "key not found", 404), "not_found", mote.is_not_found),
            (lambda: mote.kv.cas("u", "k", 3, "v"), fail("conflict", "stale version", 409), "conflict", mote.is_conflict),
            (lambda: mote.queue_pop("q", "j", 1), fail("timeout", "no item", 504), "timeout", mote.is_timeout),
            (lambda: mote.invoke("f", {}), fail("function_error", "ValueError: x", 502), "function_error", None),
            (lambda: mote.cache.get("k"), fail("forbidden", "no", 403), "forbidden", None),
            (lambda: mote.kv.get("u", "k"), (500, b"not json"), "internal", None),
        ]
        for fn, reply, want_code, pred in cases:
            with self.subTest(want_code):
                self.reply(reply)
                with self.assertRaises(mote.MoteError) as cm:
                    fn()
                self.sent()
                self.assertEqual(cm.exception.code, want_code)
                if pred is not None:
                    self.assertTrue(pred(cm.exception))
        self.assertFalse(mote.is_not_found(ValueError("not_found")))

    def test_malformed_results(self):
        cases = [
            ("kv.put", lambda: mote.kv.put("u", "k", "v"), ok(b"seven")),
            ("kv.get_version", lambda: mote.kv.get_version("u", "k"), ok(enc("v"))),
            ("kv.list", lambda: mote.kv.list("u"), ok(b"\x05ab")),
            ("objects.head", lambda: mote.objects.head("b", "k"), ok(enc("1", "2"))),
            ("await_all count", lambda: mote.await_all(["h1"]), ok(enc("", "a", "", "b"))),
            ("map count", lambda: mote.map("f", ["a", "b"]), ok(enc("", "a"))),
        ]
        for name, fn, reply in cases:
            with self.subTest(name):
                self.reply(reply)
                with self.assertRaises(mote.MoteError) as cm:
                    fn()
                self.sent()
                self.assertEqual(cm.exception.code, "internal")

    def test_bad_arguments(self):
        # Refused before anything is sent.
        cases = [
            (lambda: mote.kv.put("u", "k", 3), TypeError),
            (lambda: mote.kv.put("u", "k", "v", ttl=-1), ValueError),
            (lambda: mote.kv.put("u", "k", "v", ttl="1s"), TypeError),
            (lambda: mote.kv.put("u", "k", "v", durability="fast"), ValueError),
            (lambda: mote.kv.incr("u", "k", 1.5), TypeError),
            (lambda: mote.kv.incr("u", "k", True), TypeError),
            (lambda: mote.kv.batch("u", [("upsert", "k", "v")]), ValueError),
            (lambda: mote.kv.batch("u", ["k"]), TypeError),
            (lambda: mote.queue_push("q", "j"), TypeError),
            (lambda: mote.await_all("h1"), TypeError),
            (lambda: mote.map("f", ["a"], -1), ValueError),
            (lambda: mote.invoke("f", {1, 2}), TypeError),
        ]
        for i, (fn, exc) in enumerate(cases):
            with self.subTest(i):
                with self.assertRaises(exc):
                    fn()
        with host.lock:
            self.assertEqual(host.calls, [])


class WireTest(unittest.TestCase):
    def test_ms(self):
        cases = [(None, b""), (0, b""), (0.0001, b"1"), (0.1, b"100"), (1, b"1000"), (2.0005, b"2001"),
                 (datetime.timedelta(minutes=1), b"60000"), (datetime.timedelta(0), b"")]
        for seconds, want in cases:
            self.assertEqual(_wire.ms(seconds), want, seconds)

    def test_payload(self):
        cases = [(b"\x00", b"\x00"), ("é", "é".encode()), ({"a": [1, None]}, b'{"a":[1,null]}'),
                 (None, b"null"), (3, b"3"), (True, b"true")]
        for value, want in cases:
            self.assertEqual(_wire.payload(value), want, value)

    def test_unix_ms(self):
        self.assertEqual(_wire.unix_ms(str(EPOCH_MS).encode()), EPOCH_DT)


if __name__ == "__main__":
    unittest.main()
