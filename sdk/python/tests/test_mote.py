"""Tests of the Python SDK: the argument encoding (shared with every
runtime, see internal/host) and the Context. The Runtime API loop is
exercised end to end by internal/runtime/process's tests, against Mote."""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import mote  # noqa: E402


class ArgsTest(unittest.TestCase):
    def test_round_trip(self):
        cases = [[], [b""], [b"a"], [b"key", b"", b"v" * 300], ["text", b"\x00\xff"]]
        for args in cases:
            want = [a.encode() if isinstance(a, str) else a for a in args]
            got = mote.decode_args(mote.encode_args(*args))
            self.assertEqual(got, want)

    def test_wire_form(self):
        # uvarint(300) is 0xac 0x02, as Go's binary.AppendUvarint writes it.
        got = mote.encode_args(b"x" * 300)[:2]
        self.assertEqual(got, b"\xac\x02")

    def test_malformed(self):
        for bad in [b"\x05ab", b"\x80", b"\xff" * 11]:
            with self.assertRaises(ValueError):
                mote.decode_args(bad)

    def test_rejects_other_types(self):
        with self.assertRaises(TypeError):
            mote.encode_args(3)


class ContextTest(unittest.TestCase):
    def test_headers(self):
        deadline = int(time.time() * 1000) + 5000
        ctx = mote.Context({
            "Lambda-Runtime-Aws-Request-Id": "id-1",
            "Lambda-Runtime-Deadline-Ms": str(deadline),
            "Lambda-Runtime-Trace-Id": "Root=r-1;Parent=p-1;Sampled=0",
            "Mote-Depth": "2",
        })
        self.assertEqual((ctx.aws_request_id, ctx.root_id, ctx.parent_id, ctx.depth), ("id-1", "r-1", "p-1", 2))
        self.assertTrue(0 < ctx.get_remaining_time_in_millis() <= 5000)

    def test_call_outside_invocation(self):
        with self.assertRaises(mote.MoteError) as cm:
            mote.call("kv.get", "k")
        self.assertEqual(cm.exception.code, "bad_request")


class ResultTest(unittest.TestCase):
    def test_encode(self):
        cases = [({"a": 1}, b'{"a": 1}'), ("s", b"s"), (b"\x00", b"\x00"), (None, b"null")]
        for value, want in cases:
            self.assertEqual(mote._encode_result(value), want)

    def test_decode(self):
        cases = [(b"", None), (b'{"a": 1}', {"a": 1}), (b"not json", b"not json")]
        for body, want in cases:
            self.assertEqual(mote._decode_event(body), want)


if __name__ == "__main__":
    unittest.main()


class ResultTest(unittest.TestCase):
    """_result: what the loop posts for a handler's outcome."""

    def test_kinds(self):
        limit = mote._MAX_RESPONSE

        def boom(event, ctx):
            raise ValueError("x" * (2 * limit))

        cases = [
            (lambda e, c: "ok", "response", None),
            (lambda e, c: "y" * limit, "response", None),
            (lambda e, c: "y" * (limit + 1), "error", "Function.ResponseSizeTooLarge"),
            (boom, "error", "ValueError"),
        ]
        for handler, want_kind, want_type in cases:
            kind, body = mote._result(handler, b"", None)
            self.assertEqual(kind, want_kind)
            self.assertLessEqual(len(body), limit)
            if want_type:
                self.assertEqual(json.loads(body)["errorType"], want_type)
