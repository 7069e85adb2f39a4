"""Encoders and decoders shared by the typed wrappers (kv, objects, eph,
cache, coordination, flows). docs/storage.md and docs/flows.md define the
wire form: numbers are decimal ASCII, durations decimal milliseconds, an
absent optional argument is empty, and a result of several values is an
argument list itself."""

import datetime
import json
import operator

from . import MoteError, decode_args

_US = datetime.timedelta(microseconds=1)
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def arg(v):
    """Returns a str or bytes-like argument as bytes; str is UTF-8."""
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    raise TypeError(f"mote: expected bytes or str, not {type(v).__name__}")


def dec(n):
    """Encodes an integer as decimal ASCII (bool and float are refused so
    that a truncated value is never sent)."""
    if isinstance(n, bool):
        raise TypeError("mote: expected an int, not bool")
    return str(operator.index(n)).encode()


def ms(seconds, name="duration"):
    """Encodes a duration (seconds as int or float, or a timedelta) as
    whole milliseconds, rounded up; None or 0 is empty (the default)."""
    if seconds is None:
        return b""
    if isinstance(seconds, datetime.timedelta):
        us = seconds // _US
    elif isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
        # Through microseconds so that 0.1 s is 100 ms, not 101.
        us = round(seconds * 1_000_000)
    else:
        raise TypeError(f"mote: {name} is seconds (int or float) or a timedelta, not {type(seconds).__name__}")
    if us < 0:
        raise ValueError(f"mote: {name} must not be negative")
    if us == 0:
        return b""
    return str(-(-us // 1000)).encode()


def durability(d):
    """Encodes a durability: None or "" (the default), "durable" or "buffered"."""
    if d is None:
        return b""
    if d not in ("", "durable", "buffered"):
        raise ValueError(f'mote: durability is "durable" or "buffered", not {d!r}')
    return d.encode()


def payload(v):
    """Encodes an invocation payload: bytes as they are, str as UTF-8,
    anything else as JSON (as the bootstrap encodes a handler's result)."""
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, str):
        return v.encode()
    return json.dumps(v, separators=(",", ":")).encode()


def malformed(what):
    return MoteError("internal", f"mote: malformed {what} from host")


def parse_int(b):
    """Decodes a decimal result."""
    try:
        return int(b.decode("ascii"), 10)
    except (UnicodeDecodeError, ValueError):
        raise malformed("number") from None


def parse_list(b, n=0, exact=False):
    """Decodes a result list of at least (or, with exact, exactly) n values."""
    try:
        vals = decode_args(b)
    except ValueError:
        raise malformed("result") from None
    if len(vals) < n or (exact and len(vals) != n):
        raise malformed("result")
    return vals


def parse_keys(b):
    """Decodes a page of keys, [next_cursor, key...], as (keys, next)."""
    vals = parse_list(b, 1)
    try:
        return [k.decode() for k in vals[1:]], vals[0].decode()
    except UnicodeDecodeError:
        raise malformed("key") from None


def page(prefix, cursor, limit):
    """Encodes the prefix?, cursor?, limit? arguments of a list op."""
    return arg(prefix), arg(cursor), dec(limit) if limit else b""


def unix_ms(b):
    """Decodes a Unix time in milliseconds as an aware UTC datetime."""
    return _EPOCH + datetime.timedelta(milliseconds=parse_int(b))
