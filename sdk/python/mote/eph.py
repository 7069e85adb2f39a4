"""Ephemeral data scoped to this invocation's call tree (docs/storage.md).

Every function in the tree can read and write it, no other tree can, and
it is deleted when the tree completes or its ttl passes (seconds; None:
the platform's default of 24 hours). As the Go SDK's EphPut, EphGet, ...
"""

from . import call
from ._wire import arg, ms, page, parse_keys
from ._ops import EPH_PUT, EPH_GET, EPH_DELETE, EPH_LIST

__all__ = ["put", "get", "delete", "list"]


def put(key, value, ttl=None):
    """Writes value at key in the call tree's scope."""
    call(EPH_PUT, key, arg(value), ms(ttl, "ttl"))


def get(key):
    """Returns the value at key; a missing key raises MoteError
    ``not_found``."""
    return call(EPH_GET, key)


def delete(key):
    """Removes key from the call tree's scope."""
    call(EPH_DELETE, key)


def list(prefix="", cursor="", limit=0):  # noqa: A001 (the Go SDK's name)
    """Returns (keys, next_cursor) of the call tree's scope."""
    return parse_keys(call(EPH_LIST, *page(prefix, cursor, limit)))
