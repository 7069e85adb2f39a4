"""The function cache: node-local memory shared by this function's
invocations on the node (an LRU within the budget in the function's
config; docs/storage.md). Entries can be evicted at any time: keep only
what can be rebuilt, such as a parsed model or a fetched config.
"""

from . import MoteError, call
from ._wire import arg, ms
from ._ops import CACHE_GET, CACHE_PUT, CACHE_DELETE

__all__ = ["get", "put", "delete"]


def get(key):
    """Returns the cached value for key, or None when it is not there."""
    try:
        return call(CACHE_GET, key)
    except MoteError as e:
        if e.code == "not_found":
            return None
        raise


def put(key, value, ttl=None):
    """Caches value under key for at most ttl seconds (None: until
    evicted). A value over a quarter of the budget is not kept."""
    call(CACHE_PUT, key, arg(value), ms(ttl, "ttl"))


def delete(key):
    """Drops key from the cache."""
    call(CACHE_DELETE, key)
