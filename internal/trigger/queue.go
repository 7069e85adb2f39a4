package trigger

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/mote-run/mote/internal/clock"
	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/store"
)

// Consumer runs Function on batches of the items pushed to queue
// Bucket/Queue, as an SQS event source mapping does.
type Consumer struct {
	Name     string `json:"name"`
	Bucket   string `json:"bucket"`
	Queue    string `json:"queue"`
	Function string `json:"function"`
	// BatchSize is the most items in one invocation (default 10, at most
	// 1000).
	BatchSize int `json:"batch_size,omitempty"`
	// MaxWaitMs is the batching window: how long a batch that is not full
	// waits for more items after its first (default 0: invoke at once;
	// at most 300000).
	MaxWaitMs int `json:"max_wait_ms,omitempty"`
	// MaxAttempts is how many times an item is delivered before it goes to
	// the dead-letter queue (default 3, at most 100).
	MaxAttempts int `json:"max_attempts,omitempty"`
	// BackoffMs is the wait before an item's first retry, doubling with
	// each further one up to 5 minutes (default 1000).
	BackoffMs int `json:"backoff_ms,omitempty"`
	// DeadLetterQueue is the queue, in the same bucket, that gets items
	// that failed MaxAttempts times (default QUEUE-dlq).
	DeadLetterQueue string `json:"dead_letter_queue,omitempty"`
	// Concurrency is how many batches may run at once (default 1, at most
	// 64).
	Concurrency int       `json:"concurrency,omitempty"`
	Created     time.Time `json:"created"`
}

// withDefaults fills zero fields and checks the result.
func (c Consumer) withDefaults() (Consumer, error) {
	if c.BatchSize == 0 {
		c.BatchSize = 10
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 3
	}
	if c.BackoffMs == 0 {
		c.BackoffMs = 1000
	}
	if c.Concurrency == 0 {
		c.Concurrency = 1
	}
	if c.DeadLetterQueue == "" {
		c.DeadLetterQueue = c.Queue + "-dlq"
	}
	bad := func(format string, args ...any) (Consumer, error) {
		return Consumer{}, errs.E(errs.BadRequest, format, args...)
	}
	switch {
	case c.BatchSize < 1 || c.BatchSize > 1000:
		return bad("batch_size must be 1-1000, not %d", c.BatchSize)
	case c.MaxWaitMs < 0 || c.MaxWaitMs > 300000:
		return bad("max_wait_ms must be 0-300000, not %d", c.MaxWaitMs)
	case c.MaxAttempts < 1 || c.MaxAttempts > 100:
		return bad("max_attempts must be 1-100, not %d", c.MaxAttempts)
	case c.BackoffMs < 1 || c.BackoffMs > 300000:
		return bad("backoff_ms must be 1-300000, not %d", c.BackoffMs)
	case c.Concurrency < 1 || c.Concurrency > 64:
		return bad("concurrency must be 1-64, not %d", c.Concurrency)
	case c.DeadLetterQueue == c.Queue:
		return bad("the dead-letter queue must not be the queue itself")
	}
	for _, n := range []string{c.Queue, c.DeadLetterQueue} {
		if err := store.ValidKey(n); err != nil {
			return Consumer{}, err
		}
	}
	if err := store.ValidBucket(c.Bucket); err != nil {
		return Consumer{}, err
	}
	return c, nil
}

// ConsumerStatus is a consumer with its counters since the server started.
type ConsumerStatus struct {
	Consumer
	InFlight   int        `json:"in_flight"` // claimed items not yet done (retries waiting included)
	Queued     int64      `json:"queued"`    // items in the queue
	Batches    int64      `json:"batches"`
	Failures   int64      `json:"failed_batches"`
	Delivered  int64      `json:"items_done"`
	DeadLetter int64      `json:"items_dead_lettered"`
	LastBatch  *BatchInfo `json:"last_batch,omitempty"`
}

// BatchInfo is one batch's invocation.
type BatchInfo struct {
	Started    time.Time `json:"started"`
	Items      int       `json:"items"`
	Failed     int       `json:"failed_items"`
	Invocation string    `json:"invocation,omitempty"`
	Result     string    `json:"result"`
	Error      string    `json:"error,omitempty"`
}

// claimed is an item a consumer took from its queue, kept at
// trg/ci/CONSUMER/ID until it is done or dead-lettered.
type claimed struct {
	ID        string    `json:"id"`
	Body      []byte    `json:"body"`
	Attempts  int       `json:"attempts"` // deliveries that failed
	NotBefore time.Time `json:"not_before,omitzero"`
	First     time.Time `json:"first_received"`
}

func claimedKey(consumer, id string) []byte { return key("ci", consumer, id) }
func consumerKey(name string) []byte        { return key("c", name) }

type consumer struct {
	def Consumer
	loop

	mu      sync.Mutex
	retries []*claimed // failed items waiting to be retried
	running int        // items in batches being invoked
	kick    chan struct{}
	stats   ConsumerStatus
}

// AddConsumer validates c, records it and starts consuming.
func (m *Manager) AddConsumer(c Consumer) (*ConsumerStatus, error) {
	if err := ValidName("consumer", c.Name); err != nil {
		return nil, err
	}
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := m.checkFunction(c.Function); err != nil {
		return nil, err
	}
	if err := m.allowed(c.Function, c.Bucket, true); err != nil {
		return nil, err
	}
	c.Created = m.cfg.Clock.Now().UTC()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errs.Wrap(errs.Unavailable, ErrClosed, "triggers are shut down")
	}
	if m.consumers[c.Name] != nil {
		return nil, errs.Wrap(errs.Conflict, ErrExists, fmt.Sprintf("consumer %q exists: remove it first", c.Name))
	}
	for _, o := range m.consumers {
		if o.def.Bucket == c.Bucket && o.def.Queue == c.Queue {
			return nil, errs.E(errs.Conflict, "queue %s/%s already has consumer %q", c.Bucket, c.Queue, o.def.Name)
		}
	}
	if err := m.putJSON(consumerKey(c.Name), c); err != nil {
		return nil, err
	}
	cs := m.startConsumer(c, nil)
	st := cs.status(m)
	return &st, nil
}

// RemoveConsumer stops a consumer and deletes it. Items it had claimed and
// not finished go back to the end of the queue.
func (m *Manager) RemoveConsumer(name string) error {
	c, err := detach(m, m.consumers, "consumer", name)
	if err != nil {
		return err
	}
	var bodies, keys [][]byte
	err = scanJSON(m.cfg.DB, key("ci", name, ""), func(k []byte, it *claimed) {
		bodies, keys = append(bodies, it.Body), append(keys, bytes.Clone(k))
	})
	if err != nil {
		return errs.Wrap(errs.Internal, err, "trigger: read failed")
	}
	if len(keys) > 0 {
		if err := m.cfg.Coord.PushAndDelete(c.def.Bucket, c.def.Queue, bodies, keys); err != nil {
			return err
		}
	}
	return m.cfg.DB.Delete(consumerKey(name), true)
}

// Consumers returns every consumer's status, by name.
func (m *Manager) Consumers() []ConsumerStatus {
	m.mu.Lock()
	cs := make([]*consumer, 0, len(m.consumers))
	for _, c := range m.consumers {
		cs = append(cs, c)
	}
	m.mu.Unlock()
	out := make([]ConsumerStatus, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.status(m))
	}
	slices.SortFunc(out, func(a, b ConsumerStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// GetConsumer returns one consumer's status.
func (m *Manager) GetConsumer(name string) (*ConsumerStatus, error) {
	m.mu.Lock()
	c := m.consumers[name]
	m.mu.Unlock()
	if c == nil {
		return nil, errs.Wrap(errs.NotFound, ErrNotFound, fmt.Sprintf("consumer %q not found", name))
	}
	st := c.status(m)
	return &st, nil
}

func (c *consumer) status(m *Manager) ConsumerStatus {
	c.mu.Lock()
	st := c.stats
	st.Consumer = c.def
	st.InFlight = len(c.retries) + c.running
	if st.LastBatch != nil {
		lb := *st.LastBatch
		st.LastBatch = &lb
	}
	c.mu.Unlock()
	st.Queued, _ = m.cfg.Coord.Len(c.def.Bucket, c.def.Queue)
	return st
}

func (m *Manager) loadConsumers() error {
	var defs []*Consumer
	if err := scanJSON(m.cfg.DB, key("c", ""), func(_ []byte, c *Consumer) { defs = append(defs, c) }); err != nil {
		return err
	}
	for _, def := range defs {
		// Items claimed before the restart are delivered again first.
		var pending []*claimed
		err := scanJSON(m.cfg.DB, key("ci", def.Name, ""), func(_ []byte, it *claimed) {
			it.NotBefore = time.Time{}
			pending = append(pending, it)
		})
		if err != nil {
			return err
		}
		m.mu.Lock()
		m.startConsumer(*def, pending)
		m.mu.Unlock()
	}
	return nil
}

// startConsumer starts def's workers; the caller holds m.mu.
func (m *Manager) startConsumer(def Consumer, pending []*claimed) *consumer {
	ctx, cancel := context.WithCancel(m.ctx)
	c := &consumer{def: def, loop: loop{cancel, make(chan struct{})}, retries: pending, kick: make(chan struct{}, 1)}
	m.consumers[def.Name] = c
	var wg sync.WaitGroup
	for range def.Concurrency {
		wg.Add(1)
		m.spawn(func() {
			defer wg.Done()
			m.consume(ctx, c)
		})
	}
	m.spawn(func() {
		wg.Wait()
		close(c.done)
	})
	return c
}

// newMessageID returns an id that sorts by claim time.
func newMessageID(now time.Time, seq uint64) string {
	var b [20]byte
	binary.BigEndian.PutUint64(b[:], uint64(now.UnixNano()))
	binary.BigEndian.PutUint64(b[8:], seq)
	_, _ = rand.Read(b[16:])
	return hex.EncodeToString(b[:])
}

// consume is one worker's loop: take due retries, else claim new items
// (waiting on the queue's push channel, never polling), invoke, settle.
func (m *Manager) consume(ctx context.Context, c *consumer) {
	clock := m.cfg.Clock
	for ctx.Err() == nil {
		batch, wake := c.takeRetries(clock.Now())
		if len(batch) == 0 {
			var ready <-chan struct{}
			var err error
			batch, ready, err = m.claim(c, c.def.BatchSize)
			if err != nil {
				m.cfg.Logger.Error("consumer: claim failed", "consumer", c.def.Name, "err", err)
				if !sleepUntil(ctx, clock, clock.Now().Add(time.Second)) {
					return
				}
				continue
			}
			if len(batch) == 0 {
				if !c.wait(ctx, clock, ready, wake) {
					return
				}
				continue
			}
			if c.def.MaxWaitMs > 0 {
				batch = m.fill(ctx, c, batch)
			}
		}
		m.deliver(ctx, c, batch)
	}
}

// takeRetries removes up to BatchSize retries that are due and returns
// them, and when the next one is due (zero: none waits).
func (c *consumer) takeRetries(now time.Time) ([]*claimed, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var batch []*claimed
	var wake time.Time
	keep := c.retries[:0]
	for _, it := range c.retries {
		switch {
		case len(batch) < c.def.BatchSize && !it.NotBefore.After(now):
			batch = append(batch, it)
		default:
			if wake.IsZero() || it.NotBefore.Before(wake) {
				wake = it.NotBefore
			}
			keep = append(keep, it)
		}
	}
	clear(c.retries[len(keep):])
	c.retries = keep
	c.running += len(batch)
	return batch, wake
}

// wait sleeps until the queue has a push, a retry is due or one is added,
// or ctx ends (false).
func (c *consumer) wait(ctx context.Context, clock clock.Clock, ready <-chan struct{}, wake time.Time) bool {
	var timer <-chan time.Time
	if !wake.IsZero() {
		t := clock.NewTimer(wake.Sub(clock.Now()))
		defer t.Stop()
		timer = t.C()
	}
	select {
	case <-ready:
	case <-timer:
	case <-c.kick:
	case <-ctx.Done():
		return false
	}
	return true
}

// claim moves up to n items from the queue to the consumer's in-flight
// records.
func (m *Manager) claim(c *consumer, n int) ([]*claimed, <-chan struct{}, error) {
	now := m.cfg.Clock.Now()
	var batch []*claimed
	_, ready, err := m.cfg.Coord.Claim(c.def.Bucket, c.def.Queue, n, func(qi store.QueueItem) ([]byte, []byte) {
		it := &claimed{ID: newMessageID(now, qi.Seq), Body: qi.Value, First: now}
		batch = append(batch, it)
		raw, _ := json.Marshal(it)
		return claimedKey(c.def.Name, it.ID), raw
	})
	if err != nil {
		return nil, nil, err
	}
	if len(batch) > 0 {
		c.mu.Lock()
		c.running += len(batch)
		c.mu.Unlock()
	}
	return batch, ready, nil
}

// fill waits up to the batching window for more items to complete batch.
func (m *Manager) fill(ctx context.Context, c *consumer, batch []*claimed) []*claimed {
	clock := m.cfg.Clock
	t := clock.NewTimer(time.Duration(c.def.MaxWaitMs) * time.Millisecond)
	defer t.Stop()
	for len(batch) < c.def.BatchSize {
		more, ready, err := m.claim(c, c.def.BatchSize-len(batch))
		if err != nil {
			return batch
		}
		batch = append(batch, more...)
		if len(more) > 0 {
			continue
		}
		select {
		case <-ready:
		case <-t.C():
			return batch
		case <-ctx.Done():
			return batch
		}
	}
	return batch
}

// sqsRecord is one item of the event: the fields of an SQS message as
// Lambda delivers it.
type sqsRecord struct {
	MessageID      string            `json:"messageId"`
	ReceiptHandle  string            `json:"receiptHandle"`
	Body           string            `json:"body"`
	Attributes     map[string]string `json:"attributes"`
	MessageAttrs   map[string]any    `json:"messageAttributes"`
	MD5OfBody      string            `json:"md5OfBody"`
	EventSource    string            `json:"eventSource"`
	EventSourceARN string            `json:"eventSourceARN"`
	AWSRegion      string            `json:"awsRegion"`
}

func (m *Manager) batchEvent(c *consumer, batch []*claimed) []byte {
	ev := struct {
		Records []sqsRecord `json:"Records"`
	}{Records: make([]sqsRecord, len(batch))}
	for i, it := range batch {
		sum := md5.Sum(it.Body)
		r := sqsRecord{
			MessageID: it.ID, ReceiptHandle: it.ID, MD5OfBody: hex.EncodeToString(sum[:]),
			Attributes: map[string]string{
				"ApproximateReceiveCount":          strconv.Itoa(it.Attempts + 1),
				"ApproximateFirstReceiveTimestamp": strconv.FormatInt(it.First.UnixMilli(), 10),
			},
			MessageAttrs: map[string]any{}, EventSource: "mote:queue",
			EventSourceARN: "mote:queue:" + c.def.Bucket + "/" + c.def.Queue, AWSRegion: "local",
		}
		if utf8.Valid(it.Body) {
			r.Body = string(it.Body)
		} else {
			r.Body = base64.StdEncoding.EncodeToString(it.Body)
			r.Attributes["MoteBodyEncoding"] = "base64"
		}
		ev.Records[i] = r
	}
	raw, _ := json.Marshal(ev)
	return raw
}

// failedItems reads a partial batch failure report from out: the ids of
// the items to retry, all of them when the report names an item not in
// the batch (as Lambda does), none when there is no report.
func failedItems(out []byte, batch []*claimed) map[string]bool {
	var rep struct {
		Failures []struct {
			ID *string `json:"itemIdentifier"`
		} `json:"batchItemFailures"`
	}
	if len(out) == 0 || out[0] != '{' || json.Unmarshal(out, &rep) != nil || len(rep.Failures) == 0 {
		return nil
	}
	in := make(map[string]bool, len(batch))
	for _, it := range batch {
		in[it.ID] = true
	}
	failed := map[string]bool{}
	for _, f := range rep.Failures {
		if f.ID == nil || !in[*f.ID] {
			return in
		}
		failed[*f.ID] = true
	}
	return failed
}

// deliver invokes the function with batch and settles each item: done
// items are deleted, failed ones retried after a backoff, and those that
// failed MaxAttempts times moved to the dead-letter queue.
func (m *Manager) deliver(ctx context.Context, c *consumer, batch []*claimed) {
	clock := m.cfg.Clock
	started := clock.Now()
	m.fired(Fire{Kind: "queue", Trigger: c.def.Name, Due: batch[0].First, Fired: started, Started: started, Items: len(batch)})
	var res Result
	if err := m.allowed(c.def.Function, c.def.Bucket, true); err != nil {
		res.Err = err // its grant was taken away: the items fail, then go to the dead-letter queue
	} else {
		res = m.cfg.Invoke(ctx, c.def.Function, m.batchEvent(c, batch))
	}
	if ctx.Err() != nil && res.Err != nil {
		return // shutting down: the items stay claimed and are delivered again at start
	}
	var failed map[string]bool
	if res.Err == nil {
		failed = failedItems(res.Output, batch)
	} else {
		failed = make(map[string]bool, len(batch))
		for _, it := range batch {
			failed[it.ID] = true
		}
	}
	var done, deadKeys, deadBodies [][]byte
	var retry []*claimed
	for _, it := range batch {
		k := claimedKey(c.def.Name, it.ID)
		switch {
		case !failed[it.ID]:
			done = append(done, k)
		case it.Attempts+1 >= c.def.MaxAttempts:
			deadKeys, deadBodies = append(deadKeys, k), append(deadBodies, it.Body)
		default:
			it.Attempts++
			backoff := min(time.Duration(c.def.BackoffMs)*time.Millisecond<<min(it.Attempts-1, 20), 5*time.Minute)
			it.NotBefore = clock.Now().Add(backoff)
			retry = append(retry, it)
		}
	}
	// Losing any of these writes in a crash delivers an item once more,
	// never loses one: they need no sync of their own.
	if len(done) > 0 {
		if err := m.cfg.DB.DeleteKeys(done, false); err != nil {
			m.cfg.Logger.Error("consumer: cannot acknowledge items", "consumer", c.def.Name, "err", err)
		}
	}
	for _, it := range retry {
		raw, _ := json.Marshal(it)
		if err := m.cfg.DB.Set(claimedKey(c.def.Name, it.ID), raw, false); err != nil {
			m.cfg.Logger.Error("consumer: cannot record a retry", "consumer", c.def.Name, "err", err)
		}
	}
	if len(deadKeys) > 0 {
		if err := m.cfg.Coord.PushAndDelete(c.def.Bucket, c.def.DeadLetterQueue, deadBodies, deadKeys); err != nil {
			m.cfg.Logger.Error("consumer: cannot dead-letter items; retrying them", "consumer", c.def.Name, "err", err)
			for _, it := range batch {
				if failed[it.ID] && it.Attempts+1 >= c.def.MaxAttempts {
					it.NotBefore = clock.Now().Add(time.Second)
					retry = append(retry, it)
				}
			}
		}
	}
	info := &BatchInfo{Started: started, Items: len(batch), Failed: len(failed), Invocation: res.ID}
	info.Result, info.Error = runResult(res)
	c.mu.Lock()
	c.running -= len(batch)
	c.retries = append(c.retries, retry...)
	c.stats.Batches++
	if len(failed) > 0 {
		c.stats.Failures++
	}
	c.stats.Delivered += int64(len(done))
	c.stats.DeadLetter += int64(len(deadKeys))
	c.stats.LastBatch = info
	c.mu.Unlock()
	m.noteRecorded(c.def.Name)
	if len(retry) > 0 {
		select { // other workers may be asleep with no retry timer
		case c.kick <- struct{}{}:
		default:
		}
	}
}
