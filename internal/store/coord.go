package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"time"

	"github.com/mote-run/mote/internal/clock"
	"github.com/mote-run/mote/internal/errs"
)

// CoordConfig configures Coord.
type CoordConfig struct {
	// Durability of counter updates and queue pushes and pops (default
	// Durable).
	Durability Durability
	// MaxWait caps any blocking wait (default 15 min); a caller's context
	// deadline may end it sooner.
	MaxWait time.Duration
	// MaxItemBytes caps a queue item or signal payload (default 1 MiB).
	MaxItemBytes int
	// Clock times waits and leases (default: the system clock).
	Clock clock.Clock
}

// WithDefaults returns c with zero fields set to their defaults.
func (c CoordConfig) WithDefaults() CoordConfig {
	if c.Durability == DefaultDurability {
		c.Durability = Durable
	}
	if c.MaxWait == 0 {
		c.MaxWait = 15 * time.Minute
	}
	if c.MaxItemBytes == 0 {
		c.MaxItemBytes = 1 << 20
	}
	c.Clock = clock.Or(c.Clock)
	return c
}

// Validate reports a configuration that cannot work.
func (c CoordConfig) Validate() error {
	if c.MaxWait < 0 || c.MaxItemBytes < 0 || c.Durability > Buffered {
		return errors.New("store: bad coordination config")
	}
	return nil
}

// Coord holds the coordination primitives: counters, barriers, queues,
// signals and leases, each named by bucket and name. What must survive a
// restart (counter values, queue items) is in Pebble; who is waiting is in
// memory, and every wait sleeps on a channel (never polls), so a function
// blocked here costs no CPU and respects its context.
//
// Lock order: Coord.mu, then a queue's mu; counter stripe locks are taken
// alone.
type Coord struct {
	db     *DB
	cfg    CoordConfig
	seed   maphash.Seed
	ctrMu  [64]sync.Mutex
	closed chan struct{}
	once   sync.Once

	mu       sync.Mutex
	queues   map[string]*queue
	barriers map[string]*barrier
	topics   map[string]*topic
	leases   map[string]*lease
}

// OpenCoord returns the coordination store on db.
func OpenCoord(db *DB, cfg CoordConfig) (*Coord, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Coord{
		db: db, cfg: cfg.WithDefaults(), seed: maphash.MakeSeed(), closed: make(chan struct{}),
		queues: map[string]*queue{}, barriers: map[string]*barrier{},
		topics: map[string]*topic{}, leases: map[string]*lease{},
	}, nil
}

// Close wakes every waiter with errs.Unavailable and refuses later calls.
func (c *Coord) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func (c *Coord) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

func (c *Coord) check(bucket, name string) error {
	if c.isClosed() {
		return closedErr()
	}
	if err := ValidBucket(bucket); err != nil {
		return err
	}
	return ValidKey(name)
}

func (c *Coord) sync() bool { return c.cfg.Durability != Buffered }

func coordKey(kind, bucket, name string) []byte {
	k := make([]byte, 0, len(PrefixCoord)+2+len(bucket)+1+len(name)+9)
	k = append(k, PrefixCoord...)
	k = append(k, kind...)
	k = append(k, '/')
	k = append(k, bucket...)
	k = append(k, '/')
	return append(k, name...)
}

// waiter bounds a blocking wait by timeout (capped at MaxWait), ctx and
// Close.
type waiter struct {
	c     *Coord
	ctx   context.Context
	timer clock.Timer
	what  string
}

func (c *Coord) newWaiter(ctx context.Context, timeout time.Duration, what string) *waiter {
	return &waiter{c: c, ctx: ctx, timer: c.cfg.Clock.NewTimer(min(timeout, c.cfg.MaxWait)), what: what}
}

func (w *waiter) stop() { w.timer.Stop() }

// sleep waits for ch (nil error) or the end of the wait.
func (w *waiter) sleep(ch <-chan struct{}) error { return w.sleepOr(ch, nil) }

// sleepOr waits for ch or alt (nil error) or the end of the wait.
func (w *waiter) sleepOr(ch <-chan struct{}, alt <-chan time.Time) error {
	select {
	case <-ch:
		return nil
	case <-alt:
		return nil
	case <-w.timer.C():
		return timeoutErr(w.what)
	case <-w.ctx.Done():
		if errors.Is(w.ctx.Err(), context.DeadlineExceeded) {
			return errs.Wrap(errs.Timeout, w.ctx.Err(), w.what+" timed out")
		}
		return errs.Wrap(errs.Cancelled, w.ctx.Err(), w.what+" cancelled")
	case <-w.c.closed:
		return closedErr()
	}
}

// Add adds delta to counter bucket/name (missing: 0) and returns the new
// value. Counters are durable and separate from KV keys.
func (c *Coord) Add(bucket, name string, delta int64) (int64, error) {
	if err := c.check(bucket, name); err != nil {
		return 0, err
	}
	k := coordKey("n", bucket, name)
	mu := &c.ctrMu[maphash.Bytes(c.seed, k)%uint64(len(c.ctrMu))]
	mu.Lock()
	defer mu.Unlock()
	n, err := c.counter(k)
	if err != nil {
		return 0, err
	}
	if (delta > 0 && n > math.MaxInt64-delta) || (delta < 0 && n < math.MinInt64-delta) {
		return 0, errs.E(errs.BadRequest, "counter would overflow int64")
	}
	n += delta
	if err := c.db.Set(k, binary.LittleEndian.AppendUint64(nil, uint64(n)), c.sync()); err != nil {
		return 0, internalErr(err, "counter: write failed")
	}
	return n, nil
}

// Counter returns the value of counter bucket/name (missing: 0).
func (c *Coord) Counter(bucket, name string) (int64, error) {
	if err := c.check(bucket, name); err != nil {
		return 0, err
	}
	return c.counter(coordKey("n", bucket, name))
}

func (c *Coord) counter(k []byte) (int64, error) {
	raw, err := c.db.Get(k)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil || len(raw) != 8 {
		return 0, internalErr(fmt.Errorf("counter %q: %v", k, err), "counter: read failed")
	}
	return int64(binary.LittleEndian.Uint64(raw)), nil
}

// barrier is one round of a barrier: it releases everyone when n arrive.
type barrier struct {
	n       int
	arrived int
	done    chan struct{}
}

// Barrier arrives at barrier bucket/name for a round of n parties and
// waits until all n have arrived or timeout passes. It returns this
// caller's arrival order (1..n; the caller that gets n released the
// others). All parties must pass the same n. A caller that times out
// withdraws its arrival. Barrier state is in memory only.
func (c *Coord) Barrier(ctx context.Context, bucket, name string, n int, timeout time.Duration) (int, error) {
	if err := c.check(bucket, name); err != nil {
		return 0, err
	}
	if n < 1 || n > 1<<20 {
		return 0, errs.E(errs.BadRequest, "barrier size must be 1-%d", 1<<20)
	}
	k := string(coordKey("b", bucket, name))
	c.mu.Lock()
	b := c.barriers[k]
	if b == nil {
		b = &barrier{n: n, done: make(chan struct{})}
		c.barriers[k] = b
	}
	if b.n != n {
		c.mu.Unlock()
		return 0, errs.E(errs.Conflict, "barrier is waiting for %d parties, not %d", b.n, n)
	}
	b.arrived++
	idx := b.arrived
	if b.arrived == b.n {
		close(b.done)
		delete(c.barriers, k)
		c.mu.Unlock()
		return idx, nil
	}
	c.mu.Unlock()
	w := c.newWaiter(ctx, timeout, "barrier")
	defer w.stop()
	err := w.sleep(b.done)
	if err == nil {
		return idx, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-b.done: // released while we were giving up
		return idx, nil
	default:
	}
	b.arrived--
	if b.arrived == 0 && c.barriers[k] == b {
		delete(c.barriers, k)
	}
	return 0, err
}

// queue is the in-memory view of a durable FIFO: items [head, tail) are in
// Pebble at their sequence numbers.
type queue struct {
	mu         sync.Mutex
	key        []byte
	head, tail uint64
	ready      chan struct{} // closed and replaced by every push
}

func (q *queue) itemKey(seq uint64) []byte {
	k := append(bytes.Clone(q.key), 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

func (c *Coord) queue(bucket, name string) (*queue, error) {
	k := coordKey("q", bucket, name)
	c.mu.Lock()
	defer c.mu.Unlock()
	if q := c.queues[string(k)]; q != nil {
		return q, nil
	}
	q := &queue{key: k, ready: make(chan struct{})}
	// Recover the bounds from the items a previous run left.
	lower := append(bytes.Clone(k), 0)
	upper := PrefixEnd(lower)
	err := c.db.Range(lower, upper, false, func(key, _ []byte) bool {
		q.head = binary.BigEndian.Uint64(key[len(lower):])
		return false
	})
	if err == nil {
		err = c.db.Range(lower, upper, true, func(key, _ []byte) bool {
			q.tail = binary.BigEndian.Uint64(key[len(lower):]) + 1
			return false
		})
	}
	if err != nil {
		return nil, internalErr(err, "queue: open failed")
	}
	c.queues[string(k)] = q
	return q, nil
}

// Push appends items to queue bucket/name, wakes waiting poppers, and
// returns the queue's length.
func (c *Coord) Push(bucket, name string, items ...[]byte) (int64, error) {
	if err := c.check(bucket, name); err != nil {
		return 0, err
	}
	for _, it := range items {
		if len(it) > c.cfg.MaxItemBytes {
			return 0, errs.Wrap(errs.PayloadTooLarge, ErrTooLarge,
				fmt.Sprintf("queue item is %d bytes; the limit is %d", len(it), c.cfg.MaxItemBytes))
		}
	}
	q, err := c.queue(bucket, name)
	if err != nil {
		return 0, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	b := c.db.NewBatch()
	defer b.Close()
	for i, it := range items {
		b.Set(q.itemKey(q.tail+uint64(i)), it)
	}
	if err := c.db.Commit(b, c.cfg.Durability); err != nil {
		return 0, internalErr(err, "queue: push failed")
	}
	q.tail += uint64(len(items))
	if len(items) > 0 {
		close(q.ready)
		q.ready = make(chan struct{})
	}
	return int64(q.tail - q.head), nil
}

// Pop removes and returns the oldest item of queue bucket/name, waiting up
// to timeout for one (timeout ≤ 0: do not wait). No item in time is
// errs.Timeout.
func (c *Coord) Pop(ctx context.Context, bucket, name string, timeout time.Duration) ([]byte, error) {
	if err := c.check(bucket, name); err != nil {
		return nil, err
	}
	q, err := c.queue(bucket, name)
	if err != nil {
		return nil, err
	}
	var w *waiter
	for {
		q.mu.Lock()
		if q.head < q.tail {
			defer q.mu.Unlock()
			k := q.itemKey(q.head)
			item, err := c.db.Get(k)
			if err != nil {
				return nil, internalErr(err, "queue: read failed")
			}
			if err := c.db.Delete(k, c.sync()); err != nil {
				return nil, internalErr(err, "queue: pop failed")
			}
			q.head++
			if w != nil {
				w.stop()
			}
			return item, nil
		}
		ready := q.ready
		q.mu.Unlock()
		if timeout <= 0 {
			return nil, timeoutErr("queue pop")
		}
		if w == nil {
			w = c.newWaiter(ctx, timeout, "queue pop")
			defer w.stop()
		}
		if err := w.sleep(ready); err != nil {
			return nil, err
		}
	}
}

// Len returns the number of items in queue bucket/name.
func (c *Coord) Len(bucket, name string) (int64, error) {
	if err := c.check(bucket, name); err != nil {
		return 0, err
	}
	q, err := c.queue(bucket, name)
	if err != nil {
		return 0, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return int64(q.tail - q.head), nil
}

// topic is one signal name: the waiters of the current generation.
type topic struct {
	waiters int
	done    chan struct{}
	payload []byte // set before done is closed
}

// Publish wakes everyone waiting on signal bucket/name with payload and
// returns how many it woke. Signals are not stored: with no waiter, a
// publish is dropped (use a queue for work that must not be lost).
func (c *Coord) Publish(bucket, name string, payload []byte) (int, error) {
	if err := c.check(bucket, name); err != nil {
		return 0, err
	}
	if len(payload) > c.cfg.MaxItemBytes {
		return 0, errs.Wrap(errs.PayloadTooLarge, ErrTooLarge, "signal payload too large")
	}
	k := string(coordKey("s", bucket, name))
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.topics[k]
	if t == nil {
		return 0, nil
	}
	t.payload = bytes.Clone(payload)
	close(t.done)
	delete(c.topics, k)
	return t.waiters, nil
}

// WaitSignal waits up to timeout for the next publish on bucket/name and
// returns its payload.
func (c *Coord) WaitSignal(ctx context.Context, bucket, name string, timeout time.Duration) ([]byte, error) {
	if err := c.check(bucket, name); err != nil {
		return nil, err
	}
	if timeout <= 0 {
		return nil, timeoutErr("signal wait")
	}
	k := string(coordKey("s", bucket, name))
	c.mu.Lock()
	t := c.topics[k]
	if t == nil {
		t = &topic{done: make(chan struct{})}
		c.topics[k] = t
	}
	t.waiters++
	c.mu.Unlock()
	w := c.newWaiter(ctx, timeout, "signal wait")
	defer w.stop()
	err := w.sleep(t.done)
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-t.done:
		return bytes.Clone(t.payload), nil
	default:
	}
	t.waiters--
	if t.waiters == 0 && c.topics[k] == t {
		delete(c.topics, k)
	}
	return nil, err
}

// Lease is a held lock: Token proves ownership to Renew and Release.
type Lease struct {
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

type lease struct {
	token    string
	expires  time.Time
	released chan struct{}
}

const maxLeaseTTL = 24 * time.Hour

// Acquire takes lease bucket/name for ttl, waiting up to wait for its
// holder to release it or let it expire (wait ≤ 0: try once). A lease
// still held after the wait is errs.Conflict wrapping ErrLeaseHeld. Leases
// are in memory: a restart frees them all.
func (c *Coord) Acquire(ctx context.Context, bucket, name string, ttl, wait time.Duration) (Lease, error) {
	if err := c.check(bucket, name); err != nil {
		return Lease{}, err
	}
	if ttl <= 0 || ttl > maxLeaseTTL {
		return Lease{}, errs.E(errs.BadRequest, "lease ttl must be in (0, %s]", maxLeaseTTL)
	}
	k := string(coordKey("l", bucket, name))
	var w *waiter
	for {
		c.mu.Lock()
		now := c.cfg.Clock.Now()
		l := c.leases[k]
		if l == nil || !l.expires.After(now) {
			nl := &lease{token: newToken(), expires: now.Add(ttl), released: make(chan struct{})}
			c.leases[k] = nl
			c.mu.Unlock()
			if l != nil {
				close(l.released)
			}
			return Lease{Token: nl.token, Expires: nl.expires}, nil
		}
		released, left := l.released, l.expires.Sub(now)
		c.mu.Unlock()
		if wait <= 0 {
			return Lease{}, errs.Wrap(errs.Conflict, ErrLeaseHeld, "lease is held by another owner")
		}
		if w == nil {
			w = c.newWaiter(ctx, wait, "lease acquire")
			defer w.stop()
		}
		expired := c.cfg.Clock.NewTimer(left)
		// Wake when the holder releases or its lease runs out.
		err := w.sleepOr(released, expired.C())
		expired.Stop()
		if errs.CodeOf(err) == errs.Timeout && errors.Is(err, ErrTimeout) {
			return Lease{}, errs.Wrap(errs.Conflict, ErrLeaseHeld, "lease is still held after the wait")
		}
		if err != nil {
			return Lease{}, err
		}
	}
}

func (c *Coord) held(bucket, name, token string) (string, *lease, error) {
	if err := c.check(bucket, name); err != nil {
		return "", nil, err
	}
	k := string(coordKey("l", bucket, name))
	l := c.leases[k]
	if l == nil || l.token != token || !l.expires.After(c.cfg.Clock.Now()) {
		return "", nil, errs.Wrap(errs.Conflict, ErrLeaseHeld, "lease is not held with this token")
	}
	return k, l, nil
}

// Release frees lease bucket/name if token holds it.
func (c *Coord) Release(bucket, name, token string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, l, err := c.held(bucket, name, token)
	if err != nil {
		return err
	}
	delete(c.leases, k)
	close(l.released)
	return nil
}

// Renew extends lease bucket/name, held with token, to ttl from now.
func (c *Coord) Renew(bucket, name, token string, ttl time.Duration) (Lease, error) {
	if ttl <= 0 || ttl > maxLeaseTTL {
		return Lease{}, errs.E(errs.BadRequest, "lease ttl must be in (0, %s]", maxLeaseTTL)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, l, err := c.held(bucket, name, token)
	if err != nil {
		return Lease{}, err
	}
	l.expires = c.cfg.Clock.Now().Add(ttl)
	return Lease{Token: l.token, Expires: l.expires}, nil
}

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
