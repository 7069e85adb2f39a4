package mote

import (
	"strconv"
	"time"
)

// Coordination primitives live in buckets, like KV keys, and need the same
// permissions. A function blocked in BarrierWait, Queue.Pop, WaitSignal or
// AcquireLease sleeps in the host and is not billed for the wait.

// CounterAdd atomically adds delta to counter name in bucket and returns
// the new value. Counters survive restarts.
func CounterAdd(bucket, name string, delta int64) (int64, error) {
	res, err := Call(OpCounterAdd, []byte(bucket), []byte(name), decArg(delta))
	if err != nil {
		return 0, err
	}
	return parseDec(res)
}

// CounterGet returns counter name's value (0 if never added to).
func CounterGet(bucket, name string) (int64, error) {
	res, err := Call(OpCounterGet, []byte(bucket), []byte(name))
	if err != nil {
		return 0, err
	}
	return parseDec(res)
}

// BarrierWait waits until n parties have arrived at barrier name, or
// timeout passes (IsTimeout). It returns this caller's arrival order,
// 1..n.
func BarrierWait(bucket, name string, n int, timeout time.Duration) (int, error) {
	res, err := Call(OpBarrierWait, []byte(bucket), []byte(name), decArg(int64(n)), msArg(timeout))
	if err != nil {
		return 0, err
	}
	i, err := parseDec(res)
	return int(i), err
}

// QueueHandle is a handle on a durable FIFO queue.
type QueueHandle struct{ Bucket, Name string }

// Queue returns a handle on queue name in bucket.
func Queue(bucket, name string) QueueHandle { return QueueHandle{Bucket: bucket, Name: name} }

// Push appends items and returns the queue's length.
func (q QueueHandle) Push(items ...[]byte) (int64, error) {
	res, err := Call(OpQueuePush, append([][]byte{[]byte(q.Bucket), []byte(q.Name)}, items...)...)
	if err != nil {
		return 0, err
	}
	return parseDec(res)
}

// Pop removes and returns the oldest item, waiting up to timeout for one
// (0: do not wait). No item in time is an error for which IsTimeout holds.
func (q QueueHandle) Pop(timeout time.Duration) ([]byte, error) {
	return Call(OpQueuePop, []byte(q.Bucket), []byte(q.Name), msArg(timeout))
}

// Len returns the number of items in the queue.
func (q QueueHandle) Len() (int64, error) {
	res, err := Call(OpQueueLen, []byte(q.Bucket), []byte(q.Name))
	if err != nil {
		return 0, err
	}
	return parseDec(res)
}

// Publish wakes every function waiting on signal name with payload and
// returns how many it woke. Signals are not stored.
func Publish(bucket, name string, payload []byte) (int, error) {
	res, err := Call(OpSignalPublish, []byte(bucket), []byte(name), payload)
	if err != nil {
		return 0, err
	}
	n, err := parseDec(res)
	return int(n), err
}

// WaitSignal waits up to timeout for the next Publish on name and returns
// its payload.
func WaitSignal(bucket, name string, timeout time.Duration) ([]byte, error) {
	return Call(OpSignalWait, []byte(bucket), []byte(name), msArg(timeout))
}

// Lease is a held lock with an expiry.
type Lease struct {
	Bucket, Name, Token string
	Expires             time.Time
}

// AcquireLease takes lease name for ttl, waiting up to wait for the holder
// to release it or let it expire; a lease still held is an error for which
// IsConflict holds.
func AcquireLease(bucket, name string, ttl, wait time.Duration) (*Lease, error) {
	res, err := Call(OpLeaseAcquire, []byte(bucket), []byte(name), msArg(ttl), msArg(wait))
	if err != nil {
		return nil, err
	}
	args, err := parseList(res, 2)
	if err != nil {
		return nil, err
	}
	ms, err := parseDec(args[1])
	return &Lease{Bucket: bucket, Name: name, Token: string(args[0]), Expires: time.UnixMilli(ms)}, err
}

// Renew extends the lease to ttl from now.
func (l *Lease) Renew(ttl time.Duration) error {
	res, err := Call(OpLeaseRenew, []byte(l.Bucket), []byte(l.Name), []byte(l.Token), msArg(ttl))
	if err != nil {
		return err
	}
	ms, err := strconv.ParseInt(string(res), 10, 64)
	if err == nil {
		l.Expires = time.UnixMilli(ms)
	}
	return err
}

// Release frees the lease.
func (l *Lease) Release() error {
	_, err := Call(OpLeaseRelease, []byte(l.Bucket), []byte(l.Name), []byte(l.Token))
	return err
}
