"""Mote's Python SDK for process functions (standard library only).

A function is a module with ``handler(event, context)``; run it with the
bootstrap, which speaks the AWS Lambda Runtime API that Mote serves::

    python3 -m mote handler.handler

``event`` is the decoded JSON payload (``bytes`` when it is not JSON);
the return value is encoded as JSON (``bytes`` and ``str`` are sent as
they are). An exception fails the invocation with code function_error.
``log(msg)`` writes a line to the invocation's log, as ``print`` does.

The host surface, as in the Go SDK (docs/sdk-python.md):

- ``mote.kv``: get, get_version, put, delete, cas, incr, list, batch;
- ``mote.objects``: put, get, get_range, head, delete, list;
- ``mote.eph`` (the call tree's ephemeral data): put, get, delete, list;
- ``mote.cache`` (the function's node-local cache): get, put, delete;
- coordination: counter_add, counter_get, barrier_wait, queue_push,
  queue_pop, queue_len, signal_publish, signal_wait, lease_acquire
  (a Lease with renew and release);
- flows: invoke, invoke_async, await_all, await_any, map;
- ``call(op, *args)``: any host op, raw.

A failed host call raises MoteError with the host's ``code`` and
``message``; wrong argument types raise TypeError, bad values ValueError.
Durations are seconds (int, float or timedelta).
"""

import json
import os
import socket
import sys
import threading
import time
import traceback

__all__ = [
    "Context", "MoteError", "call", "log", "start", "encode_args", "decode_args",
    "DURABLE", "BUFFERED", "is_not_found", "is_conflict", "is_timeout",
    "kv", "objects", "eph", "cache",
    "counter_add", "counter_get", "barrier_wait", "queue_push", "queue_pop", "queue_len",
    "signal_publish", "signal_wait", "Lease", "lease_acquire", "lease_renew", "lease_release",
    "Result", "invoke", "invoke_async", "await_all", "await_any", "map",
]

# Durabilities of a write: acknowledged once fsynced, or once in memory
# (may be lost in a crash). None uses the platform's default.
DURABLE = "durable"
BUFFERED = "buffered"

_API = "/2018-06-01"


class MoteError(Exception):
    """A failed host call: ``code`` is one of Mote's stable error codes."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def is_not_found(err):
    """Reports whether err is a MoteError with code not_found."""
    return isinstance(err, MoteError) and err.code == "not_found"


def is_conflict(err):
    """Reports whether err is a MoteError with code conflict (a stale
    compare-and-swap, a held lease)."""
    return isinstance(err, MoteError) and err.code == "conflict"


def is_timeout(err):
    """Reports whether err is a MoteError with code timeout."""
    return isinstance(err, MoteError) and err.code == "timeout"


class Context:
    """The invocation being served, with Lambda's attribute names."""

    def __init__(self, headers):
        self.aws_request_id = headers.get("Lambda-Runtime-Aws-Request-Id", "")
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn", "")
        self.deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms", "0") or 0)
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        trace = dict(p.split("=", 1) for p in headers.get("Lambda-Runtime-Trace-Id", "").split(";") if "=" in p)
        self.root_id = trace.get("Root", self.aws_request_id)
        self.parent_id = trace.get("Parent", "")
        self.depth = int(headers.get("Mote-Depth", "0") or 0)

    def get_remaining_time_in_millis(self):
        return max(0, self.deadline_ms - int(time.time() * 1000))

    def call(self, op, *args):
        return call(op, *args)


def encode_args(*args):
    """Encodes host-call arguments: each as uvarint(len) then its bytes."""
    out = bytearray()
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif not isinstance(a, (bytes, bytearray)):
            raise TypeError(f"host call arguments are bytes or str, not {type(a).__name__}")
        n = len(a)
        while n >= 0x80:
            out.append(n & 0x7F | 0x80)
            n >>= 7
        out.append(n)
        out += a
    return bytes(out)


def decode_args(b):
    """Decodes an argument list made by encode_args."""
    args, i = [], 0
    while i < len(b):
        n, shift = 0, 0
        while True:
            if i >= len(b) or shift > 63:
                raise ValueError("malformed argument list")
            c = b[i]
            i += 1
            n |= (c & 0x7F) << shift
            shift += 7
            if c < 0x80:
                break
        if i + n > len(b):
            raise ValueError("malformed argument list")
        args.append(bytes(b[i:i + n]))
        i += n
    return args


_state = threading.local()
_current = {"id": ""}


class _Headers(dict):
    """Response headers, looked up by any case of their name."""

    def get(self, key, default=None):
        return dict.get(self, key.lower(), default)


class _Conn:
    """One keep-alive HTTP/1.1 connection to the Runtime API.

    The SDK's own few lines instead of http.client, whose import (with
    email.parser and ssl) was half of a fresh Python instance's start:
    104 ms for ``import mote`` before, ~25 ms after, on the development VM.
    It sends Content-Length bodies and reads Content-Length, chunked or
    read-to-close ones.
    """

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = self.sock.makefile("rb")
        self.closed = False

    def close(self):
        self.closed = True
        try:
            self.rfile.close()
            self.sock.close()
        except OSError:
            pass

    def _line(self):
        line = self.rfile.readline(65537)
        if not line.endswith(b"\n"):
            raise ConnectionError("runtime api: connection closed or line too long")
        return line

    def _exactly(self, n):
        b = self.rfile.read(n)
        if len(b) != n:
            raise ConnectionError("runtime api: connection closed mid-body")
        return b

    def roundtrip(self, method, path, body, headers):
        body = body or b""
        head = [f"{method} {path} HTTP/1.1", "Host: runtime", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + bytes(body))
        parts = self._line().split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise ConnectionError("runtime api: malformed status line")
        status, h = int(parts[1]), _Headers()
        while True:
            line = self._line()
            if line in (b"\r\n", b"\n"):
                break
            k, _, v = line.decode("latin-1").partition(":")
            h[k.strip().lower()] = v.strip()
        if h.get("transfer-encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                n = int(self._line().split(b";")[0], 16)
                if n == 0:
                    while self._line() not in (b"\r\n", b"\n"):
                        pass
                    break
                data += self._exactly(n)
                self._line()
            data = bytes(data)
        elif "content-length" in h:
            data = self._exactly(int(h["content-length"]))
        else:
            data = self.rfile.read()
            self.close()
        if h.get("connection", "").lower() == "close" or parts[0] == b"HTTP/1.0":
            self.close()
        return status, h, data


def _conn():
    c = getattr(_state, "conn", None)
    if c is None or c.closed:
        addr = os.environ.get("AWS_LAMBDA_RUNTIME_API")
        if not addr:
            raise MoteError("unavailable", "AWS_LAMBDA_RUNTIME_API is not set")
        host, _, port = addr.rpartition(":")
        c = _Conn(host, int(port))
        _state.conn = c
    return c


def _request(method, path, body=None, headers=None):
    for attempt in (0, 1):
        c = _conn()
        try:
            return c.roundtrip(method, _API + path, body, headers or {})
        except (OSError, ValueError):
            c.close()
            _state.conn = None
            if attempt:
                raise


def call(op, *args):
    """Makes host call ``op`` for the running invocation; returns bytes or
    raises MoteError with the host's error code."""
    rid = _current["id"]
    if not rid:
        raise MoteError("bad_request", "host call outside an invocation")
    status, _, body = _request("POST", "/mote/call/" + op, encode_args(*args),
                               {"Lambda-Runtime-Aws-Request-Id": rid})
    if status == 200:
        return body
    try:
        e = json.loads(body)
        raise MoteError(e.get("code", "internal"), e.get("error", ""))
    except ValueError:
        raise MoteError("internal", f"host call failed with status {status}") from None


def log(msg):
    """Writes one line to the invocation's log."""
    sys.stderr.write(str(msg).rstrip("\n") + "\n")
    sys.stderr.flush()


def _error_body(exc):
    return json.dumps({
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }).encode()


def _decode_event(body):
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body


def _encode_result(v):
    if isinstance(v, (bytes, bytearray)):
        return bytes(v)
    if isinstance(v, str):
        return v.encode()
    return json.dumps(v).encode()


def init_error(exc):
    """Reports that the function could not start, then exits."""
    try:
        _request("POST", "/runtime/init/error", _error_body(exc),
                 {"Lambda-Runtime-Function-Error-Type": "Runtime.InitError"})
    finally:
        traceback.print_exception(exc)
        sys.exit(1)


# The largest response the platform takes (AWS Lambda's 6 MiB unless Mote
# says otherwise). A larger result is reported as that invocation's error,
# as Lambda does, instead of being sent and refused with the connection.
_MAX_RESPONSE = int(os.environ.get("MOTE_MAX_RESPONSE") or 6 << 20)
_MAX_ERROR_MESSAGE = 64 << 10


def _result(handler, event, ctx):
    """Runs the handler and returns (kind, body) to post: "response" and
    its result, or "error" and the Runtime API's error JSON."""
    try:
        value = handler(_decode_event(event), ctx)
        if value is STREAMED:  # the handler posted its response itself
            return "streamed", None
        out = _encode_result(value)
    except Exception as exc:  # the function's failure, reported to the caller
        body = _error_body(exc)
        if len(body) > _MAX_RESPONSE:
            body = json.dumps({"errorMessage": str(exc)[:_MAX_ERROR_MESSAGE],
                               "errorType": type(exc).__name__}).encode()
        return "error", body
    if len(out) > _MAX_RESPONSE:
        return "error", json.dumps({
            "errorMessage": f"Response payload size ({len(out)} bytes) exceeded "
                            f"maximum allowed payload size ({_MAX_RESPONSE} bytes).",
            "errorType": "Function.ResponseSizeTooLarge",
        }).encode()
    return "response", out


# STREAMED is what a handler returns when it has posted its response
# itself, streamed (mote.wsgi does for text/event-stream).
STREAMED = object()


def start(handler):
    """Runs the Runtime API loop, calling ``handler(event, context)`` for
    each event. Never returns."""
    while True:
        status, headers, body = _request("GET", "/runtime/invocation/next")
        if status != 200:
            log(f"mote: runtime api next: status {status}")
            sys.exit(1)
        ctx = Context(headers)
        _current["id"] = ctx.aws_request_id
        try:
            kind, out = _result(handler, body, ctx)
        finally:
            _current["id"] = ""
        if kind == "streamed":
            continue
        path = f"/runtime/invocation/{ctx.aws_request_id}/{kind}"
        try:
            _request("POST", path, out, {"Content-Type": "application/json"})
        except (OSError, ValueError) as exc:
            # The platform has ended this invocation already (its deadline,
            # say): serve the next one.
            log(f"mote: could not post the result of {ctx.aws_request_id}: {exc}")


# The typed wrappers import call and the codec from this module, so they
# come last.
from . import cache, eph, kv, objects  # noqa: E402
from .coord import (  # noqa: E402
    Lease, barrier_wait, counter_add, counter_get, lease_acquire, lease_release, lease_renew,
    queue_len, queue_pop, queue_push, signal_publish, signal_wait,
)
from .flow import Result, await_all, await_any, invoke, invoke_async, map  # noqa: E402,A004
