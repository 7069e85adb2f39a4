"""Coordination primitives: counters, barriers, queues, signals and
leases (docs/storage.md). They live in buckets, like KV keys, and need the
same permissions. A function blocked in barrier_wait, queue_pop,
signal_wait or lease_acquire sleeps in the host and is not billed for the
wait. Durations are seconds (int, float or timedelta).
"""

from . import call
from ._wire import arg, dec, ms, parse_int, parse_list, unix_ms
from ._ops import COUNTER_ADD, COUNTER_GET, BARRIER_WAIT, QUEUE_PUSH, QUEUE_POP, QUEUE_LEN, SIGNAL_PUBLISH, SIGNAL_WAIT, LEASE_RENEW, LEASE_RELEASE, LEASE_ACQUIRE

__all__ = [
    "counter_add", "counter_get", "barrier_wait", "queue_push", "queue_pop", "queue_len",
    "signal_publish", "signal_wait", "Lease", "lease_acquire", "lease_renew", "lease_release",
]


def counter_add(bucket, name, delta=1):
    """Atomically adds delta to counter name and returns the new value.
    Counters survive restarts."""
    return parse_int(call(COUNTER_ADD, bucket, name, dec(delta)))


def counter_get(bucket, name):
    """Returns counter name's value (0 if never added to)."""
    return parse_int(call(COUNTER_GET, bucket, name))


def barrier_wait(bucket, name, n, timeout):
    """Waits until n parties have arrived at barrier name and returns this
    caller's arrival order, 1..n; raises MoteError ``timeout`` when timeout
    passes first (the caller withdraws)."""
    return parse_int(call(BARRIER_WAIT, bucket, name, dec(n), ms(timeout, "timeout")))


def queue_push(bucket, name, *items):
    """Appends items (bytes or str) to the durable FIFO queue name and
    returns its length."""
    if not items:
        raise TypeError("mote: queue_push needs at least one item")
    return parse_int(call(QUEUE_PUSH, bucket, name, *[arg(i) for i in items]))


def queue_pop(bucket, name, timeout=0):
    """Removes and returns the oldest item, waiting up to timeout for one
    (0: do not wait); none in time raises MoteError ``timeout``."""
    return call(QUEUE_POP, bucket, name, ms(timeout, "timeout"))


def queue_len(bucket, name):
    """Returns the number of items in queue name."""
    return parse_int(call(QUEUE_LEN, bucket, name))


def signal_publish(bucket, name, payload=b""):
    """Wakes every function waiting on signal name with payload and returns
    how many it woke. Signals are not stored: with no waiter it is lost."""
    return parse_int(call(SIGNAL_PUBLISH, bucket, name, arg(payload)))


def signal_wait(bucket, name, timeout):
    """Waits up to timeout for the next publish on signal name and returns
    its payload; none in time raises MoteError ``timeout``."""
    return call(SIGNAL_WAIT, bucket, name, ms(timeout, "timeout"))


class Lease:
    """A held lock with an expiry (``expires``, a UTC datetime). As a
    context manager it is released on exit."""

    def __init__(self, bucket, name, token, expires):
        self.bucket, self.name, self.token, self.expires = bucket, name, token, expires

    def __repr__(self):
        return f"Lease({self.bucket!r}, {self.name!r}, expires={self.expires.isoformat()})"

    def renew(self, ttl):
        """Extends the lease to ttl from now; a lease no longer held raises
        MoteError ``conflict``."""
        self.expires = unix_ms(call(LEASE_RENEW, self.bucket, self.name, self.token, ms(ttl, "ttl")))

    def release(self):
        """Frees the lease."""
        call(LEASE_RELEASE, self.bucket, self.name, self.token)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False


def lease_acquire(bucket, name, ttl, wait=0):
    """Takes lease name for ttl, waiting up to wait for its holder to
    release it or let it expire (0: try once); a lease still held raises
    MoteError ``conflict``."""
    token, expires = parse_list(call(LEASE_ACQUIRE, bucket, name, ms(ttl, "ttl"), ms(wait, "wait")), 2)[:2]
    return Lease(bucket, name, token.decode(), unix_ms(expires))


def lease_renew(lease, ttl):
    """Extends lease to ttl from now (Lease.renew)."""
    lease.renew(ttl)


def lease_release(lease):
    """Frees lease (Lease.release)."""
    lease.release()
