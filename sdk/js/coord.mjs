// Coordination primitives: counters, barriers, queues, signals and leases
// (docs/storage.md). They live in buckets, like KV keys, and need the same
// permissions. A function blocked in barrierWait, queuePop, signalWait or
// leaseAcquire sleeps in the host and is not billed for the wait.
// Durations are milliseconds.

import { call } from "./call.mjs";
import { arg, dec, ms, parseList, parseNum, unixMs } from "./wire.mjs";
import { COUNTER_ADD, COUNTER_GET, BARRIER_WAIT, QUEUE_PUSH, QUEUE_POP, QUEUE_LEN, SIGNAL_PUBLISH, SIGNAL_WAIT, LEASE_RENEW, LEASE_RELEASE, LEASE_ACQUIRE } from "./ops.mjs";

/** Atomically adds delta to counter name and resolves to the new value.
 * Counters survive restarts. */
export async function counterAdd(bucket, name, delta = 1) {
  return parseNum(await call(COUNTER_ADD, bucket, name, dec(delta, "delta")));
}

/** Resolves to counter name's value (0 if never added to). */
export async function counterGet(bucket, name) {
  return parseNum(await call(COUNTER_GET, bucket, name));
}

/** Waits until n parties have arrived at barrier name and resolves to
 * this caller's arrival order, 1..n; rejects with timeout when timeoutMs
 * passes first (the caller withdraws). */
export async function barrierWait(bucket, name, n, timeoutMs) {
  return parseNum(await call(BARRIER_WAIT, bucket, name, dec(n, "n"), ms(timeoutMs, "timeoutMs")));
}

/** Appends items (strings or bytes) to the durable FIFO queue name and
 * resolves to its length. */
export async function queuePush(bucket, name, ...items) {
  if (items.length === 0) throw new TypeError("mote: queuePush needs at least one item");
  return parseNum(await call(QUEUE_PUSH, bucket, name, ...items.map((i) => arg(i, "item"))));
}

/** Removes and resolves to the oldest item, waiting up to timeoutMs for
 * one (0: do not wait); none in time rejects with timeout. */
export async function queuePop(bucket, name, timeoutMs = 0) {
  return call(QUEUE_POP, bucket, name, ms(timeoutMs, "timeoutMs"));
}

/** Resolves to the number of items in queue name. */
export async function queueLen(bucket, name) {
  return parseNum(await call(QUEUE_LEN, bucket, name));
}

/** Wakes every function waiting on signal name with payload and resolves
 * to how many it woke. Signals are not stored: with no waiter it is lost. */
export async function signalPublish(bucket, name, payload = "") {
  return parseNum(await call(SIGNAL_PUBLISH, bucket, name, arg(payload, "payload")));
}

/** Waits up to timeoutMs for the next publish on signal name and resolves
 * to its payload; none in time rejects with timeout. */
export async function signalWait(bucket, name, timeoutMs) {
  return call(SIGNAL_WAIT, bucket, name, ms(timeoutMs, "timeoutMs"));
}

/** A held lock with an expiry (`expires`, a Date). */
export class Lease {
  constructor(bucket, name, token, expires) {
    this.bucket = bucket;
    this.name = name;
    this.token = token;
    this.expires = expires;
  }

  /** Extends the lease to ttlMs from now; one no longer held rejects
   * with conflict. */
  async renew(ttlMs) {
    this.expires = unixMs(await call(LEASE_RENEW, this.bucket, this.name, this.token, ms(ttlMs, "ttlMs")));
  }

  /** Frees the lease. */
  async release() {
    await call(LEASE_RELEASE, this.bucket, this.name, this.token);
  }
}

/** Takes lease name for ttlMs, waiting up to waitMs for its holder to
 * release it or let it expire (0: try once); a lease still held rejects
 * with conflict. */
export async function leaseAcquire(bucket, name, ttlMs, waitMs = 0) {
  const [token, expires] = parseList(
    await call(LEASE_ACQUIRE, bucket, name, ms(ttlMs, "ttlMs"), ms(waitMs, "waitMs")),
    2,
  );
  return new Lease(bucket, name, token.toString(), unixMs(expires));
}

/** Extends lease to ttlMs from now (Lease.renew). */
export function leaseRenew(lease, ttlMs) {
  return lease.renew(ttlMs);
}

/** Frees lease (Lease.release). */
export function leaseRelease(lease) {
  return lease.release();
}
