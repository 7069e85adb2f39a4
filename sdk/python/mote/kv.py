"""KV buckets: versioned values with optional TTL (docs/storage.md).

The function's config must allow reading or writing a bucket, or calls
raise MoteError with code ``forbidden``. Keys and values are ``str``
(sent as UTF-8) or bytes; values come back as ``bytes``. ``ttl`` is in
seconds (int, float or timedelta; None: never expires). ``durability``
is None (the platform's default), ``"durable"`` (acknowledged once
fsynced) or ``"buffered"`` (acknowledged once in memory; may be lost in a
crash).
"""

from . import call
from ._wire import arg, dec, durability as _durability, ms, page, parse_int, parse_keys, parse_list
from ._ops import KV_GET, KV_GETV, KV_PUT, KV_DELETE, KV_CAS, KV_INCR, KV_LIST, KV_BATCH

__all__ = ["get", "get_version", "put", "delete", "cas", "incr", "list", "batch"]


def get(bucket, key):
    """Returns the value at key; a missing key raises MoteError
    ``not_found``."""
    return call(KV_GET, bucket, key)


def get_version(bucket, key):
    """Returns (value, version) of key, the version being what cas takes."""
    value, version = parse_list(call(KV_GETV, bucket, key), 2)[:2]
    return value, parse_int(version)


def put(bucket, key, value, ttl=None, durability=None):
    """Writes value at key and returns its new version."""
    return parse_int(call(KV_PUT, bucket, key, arg(value), ms(ttl, "ttl"), _durability(durability)))


def delete(bucket, key, durability=None):
    """Removes key; a missing key is not an error."""
    call(KV_DELETE, bucket, key, _durability(durability))


def cas(bucket, key, version, value, ttl=None, durability=None):
    """Writes value at key only if the key's version is still version (0:
    only if the key does not exist) and returns the new version; otherwise
    raises MoteError ``conflict``."""
    return parse_int(call(KV_CAS, bucket, key, dec(version), arg(value), ms(ttl, "ttl"),
                          _durability(durability)))


def incr(bucket, key, delta=1, durability=None):
    """Atomically adds delta to the decimal integer at key (missing: 0)
    and returns the result."""
    return parse_int(call(KV_INCR, bucket, key, dec(delta), _durability(durability)))


def list(bucket, prefix="", cursor="", limit=0):  # noqa: A001 (the Go SDK's name)
    """Returns (keys, next_cursor): up to limit keys (0: 100; at most
    1000) starting with prefix, after cursor; next_cursor is "" on the
    last page."""
    return parse_keys(call(KV_LIST, bucket, *page(prefix, cursor, limit)))


def batch(bucket, ops, durability=None):
    """Applies ops atomically (all or none) and returns each op's new
    version (0 for deletes). An op is ``("put", key, value)``,
    ``("delete", key)`` or a dict ``{"op": ..., "key": ..., "value": ...}``
    as in the HTTP API."""
    args = [bucket, _durability(durability)]
    for op in ops:
        if isinstance(op, dict):
            kind, key, value = op.get("op"), op.get("key"), op.get("value", b"")
        elif isinstance(op, tuple) and len(op) in (2, 3):
            kind, key, value = op[0], op[1], op[2] if len(op) == 3 else b""
        else:
            raise TypeError(f"mote: a batch op is (op, key[, value]) or a dict, not {op!r}")
        if kind == "delete":
            value = b""
        elif kind != "put":
            raise ValueError(f'mote: batch op is "put" or "delete", not {kind!r}')
        args += [kind, arg(key), arg(value)]
    return [parse_int(v) for v in parse_list(call(KV_BATCH, *args))]
