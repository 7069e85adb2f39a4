"""Calls between functions (docs/flows.md). The platform records each call
in the invocation's call tree, enforces depth and descendant limits,
retries by the callee's policy and journals completed results, so that a
retried caller gets them back without re-running them: make the same calls
in the same order on every attempt.

A payload is sent as bytes as they are, a str as UTF-8 and anything else
as JSON; outputs come back as bytes (``json.loads`` them when the callee
returns JSON).
"""

from . import MoteError, call
from ._wire import dec, ms, parse_list, payload
from ._ops import INVOKE, INVOKE_ASYNC, AWAIT, MAP

__all__ = ["Result", "invoke", "invoke_async", "await_all", "await_any", "map"]


class Result:
    """The outcome of one call in await_all, await_any or map: ``output``
    (bytes) on success, ``error`` (a MoteError) on failure, ``pending``
    for a call await_any found still running."""

    __slots__ = ("output", "error", "pending")

    def __init__(self, output=None, error=None, pending=False):
        self.output, self.error, self.pending = output, error, pending

    @property
    def ok(self):
        """True when the call succeeded."""
        return self.error is None and not self.pending

    def __eq__(self, other):
        return isinstance(other, Result) and (self.output, self.pending) == (other.output, other.pending) and \
            _err_key(self.error) == _err_key(other.error)

    def __repr__(self):
        if self.pending:
            return "Result(pending=True)"
        if self.error is not None:
            return f"Result(error={self.error!r})"
        return f"Result(output={self.output!r})"


def _err_key(e):
    return None if e is None else (e.code, e.message)


def invoke(fn, event=b""):
    """Calls function fn with event and returns its output (bytes); a
    failed call raises MoteError with the callee's code (function_error,
    timeout, limit_exceeded, not_found, ...)."""
    return call(INVOKE, fn, payload(event))


def invoke_async(fn, event=b""):
    """Starts function fn with event and returns its handle (the child's
    invocation id, a str) at once; collect it with await_all or await_any."""
    return call(INVOKE_ASYNC, fn, payload(event)).decode()


def await_all(handles, timeout=None):
    """Waits until every call in handles has ended and returns a Result
    for each, in order. timeout (seconds; None: as long as the invocation
    may run) passing first raises MoteError ``timeout``; the calls go on."""
    return _await("all", handles, timeout)


def await_any(handles, timeout=None):
    """Waits until at least one call in handles has ended; calls still
    running are Result(pending=True)."""
    return _await("any", handles, timeout)


def _await(mode, handles, timeout):
    if isinstance(handles, (str, bytes)):
        raise TypeError("mote: handles is a list of handles, not one handle")
    handles = [h for h in handles]
    return _results(call(AWAIT, mode, ms(timeout, "timeout") or b"0", *handles), len(handles))


def map(fn, events, concurrency=0):  # noqa: A001 (the Go SDK's name)
    """Calls fn once per event, at most concurrency at a time (0: the
    platform's default), and returns a Result per event, in event order.
    One failed call does not fail the others: check each Result."""
    if concurrency < 0:
        raise ValueError("mote: concurrency must not be negative")
    events = [payload(e) for e in events]
    return _results(call(MAP, fn, dec(concurrency), *events), len(events))


def _results(b, n):
    """Decodes two values per call: a code ("" success, "pending", or an
    error code) and the output or message."""
    vals = parse_list(b, 2 * n, exact=True)
    out = []
    for i in range(n):
        code, data = vals[2 * i].decode(), vals[2 * i + 1]
        if code == "":
            out.append(Result(output=data))
        elif code == "pending":
            out.append(Result(pending=True))
        else:
            out.append(Result(error=MoteError(code, data.decode(errors="replace"))))
    return out
