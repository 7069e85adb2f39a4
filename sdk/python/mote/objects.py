"""Object buckets: whole blobs with a SHA-256 and a content type
(docs/storage.md).

Through host calls an object moves whole up to the platform's per-call cap
(8 MiB by default; more raises MoteError ``payload_too_large``): read
larger ones in ranges with ``get(bucket, key, offset, length)`` and write
them through the HTTP API.
"""

import dataclasses
import datetime
from typing import Optional

from . import call
from ._wire import arg, dec, page, parse_int, parse_keys, parse_list, unix_ms
from ._ops import OBJ_PUT, OBJ_GET, OBJ_HEAD, OBJ_DELETE, OBJ_LIST

__all__ = ["ObjectInfo", "put", "get", "get_range", "head", "delete", "list"]


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
    """ObjectInfo describes a stored object; sha256 is hex, modified is a
    UTC datetime (None in what put returns)."""

    size: int
    sha256: str
    content_type: str = ""
    modified: Optional[datetime.datetime] = None


def put(bucket, key, data, content_type=""):
    """Stores data (bytes, or str as UTF-8) at key and returns its
    ObjectInfo (size and SHA-256)."""
    size, sha = parse_list(call(OBJ_PUT, bucket, key, arg(data), content_type), 2)[:2]
    return ObjectInfo(size=parse_int(size), sha256=sha.decode(), content_type=content_type)


def get(bucket, key, offset=0, length=None):
    """Returns the object at key, or length bytes of it from offset
    (length None: to the end)."""
    if not offset and length is None:
        return call(OBJ_GET, bucket, key)
    return call(OBJ_GET, bucket, key, dec(offset), b"" if length is None else dec(length))


def get_range(bucket, key, offset, length=-1):
    """Returns length bytes of the object from offset (length < 0: to the
    end), as the Go SDK's GetRange."""
    return get(bucket, key, offset, None if length < 0 else length)


def head(bucket, key):
    """Returns the ObjectInfo of the object at key."""
    size, sha, ctype, modified = parse_list(call(OBJ_HEAD, bucket, key), 4)[:4]
    return ObjectInfo(size=parse_int(size), sha256=sha.decode(), content_type=ctype.decode(),
                      modified=unix_ms(modified))


def delete(bucket, key):
    """Removes the object at key; a missing object raises MoteError
    ``not_found``."""
    call(OBJ_DELETE, bucket, key)


def list(bucket, prefix="", cursor="", limit=0):  # noqa: A001 (the Go SDK's name)
    """Returns (keys, next_cursor) of up to limit objects starting with
    prefix, after cursor; next_cursor is "" on the last page."""
    return parse_keys(call(OBJ_LIST, bucket, *page(prefix, cursor, limit)))
