package trigger

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/store"
)

// Watch runs Function on the puts and deletes in a KV or object bucket
// whose keys start with Prefix, in batches, in the order they were made.
type Watch struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"` // "kv" or "obj"
	Bucket   string `json:"bucket"`
	Prefix   string `json:"prefix,omitempty"`
	Function string `json:"function"`
	// BatchSize is the most events in one invocation (default 100, at
	// most 1000).
	BatchSize int `json:"batch_size,omitempty"`
	// MaxAttempts is how many times a batch is delivered before its
	// events go to the dead-letter queue and the watch moves on (default
	// 3, at most 100).
	MaxAttempts int `json:"max_attempts,omitempty"`
	// BackoffMs is the wait before a batch's first retry, doubling after
	// (default 1000).
	BackoffMs int `json:"backoff_ms,omitempty"`
	// DeadLetterQueue is the queue, named in Bucket, that gets the
	// events of a batch that failed MaxAttempts times (default NAME-dlq).
	DeadLetterQueue string    `json:"dead_letter_queue,omitempty"`
	Created         time.Time `json:"created"`
}

func (w Watch) withDefaults() (Watch, error) {
	if w.BatchSize == 0 {
		w.BatchSize = 100
	}
	if w.MaxAttempts == 0 {
		w.MaxAttempts = 3
	}
	if w.BackoffMs == 0 {
		w.BackoffMs = 1000
	}
	if w.DeadLetterQueue == "" {
		w.DeadLetterQueue = w.Name + "-dlq"
	}
	bad := func(format string, args ...any) (Watch, error) {
		return Watch{}, errs.E(errs.BadRequest, format, args...)
	}
	switch {
	case w.Kind != "kv" && w.Kind != "obj":
		return bad("kind must be \"kv\" or \"obj\", not %q", w.Kind)
	case w.BatchSize < 1 || w.BatchSize > 1000:
		return bad("batch_size must be 1-1000, not %d", w.BatchSize)
	case w.MaxAttempts < 1 || w.MaxAttempts > 100:
		return bad("max_attempts must be 1-100, not %d", w.MaxAttempts)
	case w.BackoffMs < 1 || w.BackoffMs > 300000:
		return bad("backoff_ms must be 1-300000, not %d", w.BackoffMs)
	case len(w.Prefix) > store.MaxKeyLen:
		return bad("prefix is longer than a key may be")
	}
	if err := store.ValidBucket(w.Bucket); err != nil {
		return Watch{}, err
	}
	if err := store.ValidKey(w.DeadLetterQueue); err != nil {
		return Watch{}, err
	}
	return w, nil
}

// WatchStatus is a watch with where it stands.
type WatchStatus struct {
	Watch
	Cursor     uint64     `json:"cursor"` // the change log's sequence number it has handled
	Batches    int64      `json:"batches"`
	Failures   int64      `json:"failed_batches"`
	Delivered  int64      `json:"events_done"`
	DeadLetter int64      `json:"events_dead_lettered"`
	LastBatch  *BatchInfo `json:"last_batch,omitempty"`
}

type watcher struct {
	def Watch
	loop

	mu     sync.Mutex
	cursor uint64
	stats  WatchStatus
}

func watchKey(name string) []byte       { return key("w", name) }
func watchCursorKey(name string) []byte { return key("wc", name) }

// AddWatch validates w, records it and starts delivering the changes made
// from now on.
func (m *Manager) AddWatch(w Watch) (*WatchStatus, error) {
	if m.cfg.Changes == nil {
		return nil, errs.E(errs.Unavailable, "change events are not available")
	}
	if err := ValidName("watch", w.Name); err != nil {
		return nil, err
	}
	w, err := w.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := m.checkFunction(w.Function); err != nil {
		return nil, err
	}
	if err := m.allowed(w.Function, w.Bucket, false); err != nil {
		return nil, err
	}
	w.Created = m.cfg.Clock.Now().UTC()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errs.Wrap(errs.Unavailable, ErrClosed, "triggers are shut down")
	}
	if m.watches[w.Name] != nil {
		return nil, errs.Wrap(errs.Conflict, ErrExists, fmt.Sprintf("watch %q exists: remove it first", w.Name))
	}
	// Watch first, then take the cursor: every write logged is after it
	// or settled before it.
	if err := m.cfg.Changes.Watch(w.Kind, w.Bucket); err != nil {
		return nil, err
	}
	cursor := m.cfg.Changes.Settled()
	if err := m.putCursor(w.Name, cursor, true); err == nil {
		err = m.putJSON(watchKey(w.Name), w)
	}
	if err != nil {
		m.cfg.Changes.Unwatch(w.Kind, w.Bucket)
		return nil, err
	}
	wr := m.startWatch(w, cursor)
	st := wr.status()
	return &st, nil
}

// RemoveWatch stops and deletes a watch; the changes it had not handled
// are dropped.
func (m *Manager) RemoveWatch(name string) error {
	w, err := detach(m, m.watches, "watch", name)
	if err != nil {
		return err
	}
	if err := m.cfg.DB.Delete(watchKey(name), true); err != nil {
		return errs.Wrap(errs.Internal, err, "trigger: delete failed")
	}
	m.cfg.DB.Delete(watchCursorKey(name), false)
	if err := m.cfg.Changes.Unwatch(w.def.Kind, w.def.Bucket); err != nil {
		return err
	}
	m.trimChanges()
	return nil
}

// Watches returns every watch's status, by name.
func (m *Manager) Watches() []WatchStatus {
	m.mu.Lock()
	ws := make([]*watcher, 0, len(m.watches))
	for _, w := range m.watches {
		ws = append(ws, w)
	}
	m.mu.Unlock()
	out := make([]WatchStatus, 0, len(ws))
	for _, w := range ws {
		out = append(out, w.status())
	}
	slices.SortFunc(out, func(a, b WatchStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// GetWatch returns one watch's status.
func (m *Manager) GetWatch(name string) (*WatchStatus, error) {
	m.mu.Lock()
	w := m.watches[name]
	m.mu.Unlock()
	if w == nil {
		return nil, errs.Wrap(errs.NotFound, ErrNotFound, fmt.Sprintf("watch %q not found", name))
	}
	st := w.status()
	return &st, nil
}

func (w *watcher) status() WatchStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.stats
	st.Watch, st.Cursor = w.def, w.cursor
	if st.LastBatch != nil {
		lb := *st.LastBatch
		st.LastBatch = &lb
	}
	return st
}

func (m *Manager) putCursor(name string, seq uint64, sync bool) error {
	if err := m.cfg.DB.Set(watchCursorKey(name), binary.BigEndian.AppendUint64(nil, seq), sync); err != nil {
		return errs.Wrap(errs.Internal, err, "trigger: write failed")
	}
	return nil
}

func (m *Manager) loadWatches() error {
	if m.cfg.Changes == nil {
		return nil
	}
	var defs []*Watch
	if err := scanJSON(m.cfg.DB, key("w", ""), func(_ []byte, w *Watch) { defs = append(defs, w) }); err != nil {
		return err
	}
	for _, def := range defs {
		raw, err := m.cfg.DB.Get(watchCursorKey(def.Name))
		if err != nil || len(raw) != 8 {
			return fmt.Errorf("trigger: watch %s has no cursor: %v", def.Name, err)
		}
		m.mu.Lock()
		m.startWatch(*def, binary.BigEndian.Uint64(raw))
		m.mu.Unlock()
	}
	return nil
}

// startWatch starts def's loop; the caller holds m.mu.
func (m *Manager) startWatch(def Watch, cursor uint64) *watcher {
	ctx, cancel := context.WithCancel(m.ctx)
	w := &watcher{def: def, loop: loop{cancel, make(chan struct{})}, cursor: cursor}
	m.watches[def.Name] = w
	m.spawn(func() {
		defer close(w.done)
		m.runWatch(ctx, w)
	})
	return w
}

// runWatch follows the change log from the watch's cursor: it gathers the
// next batch of matching changes, delivers it (retrying, then
// dead-lettering), and only then moves the cursor past it, so a restart
// delivers again what was not done (at least once, in order).
func (m *Manager) runWatch(ctx context.Context, w *watcher) {
	cl := m.cfg.Changes
	w.mu.Lock()
	cursor := w.cursor
	w.mu.Unlock()
	var batch []store.Change
	for ctx.Err() == nil {
		chs, upTo, ready, err := cl.Read(cursor, w.def.BatchSize)
		if err != nil {
			m.cfg.Logger.Error("watch: reading changes failed", "watch", w.def.Name, "err", err)
			if !sleepUntil(ctx, m.cfg.Clock, m.cfg.Clock.Now().Add(time.Second)) {
				return
			}
			continue
		}
		batch = batch[:0]
		covered := upTo
		for _, c := range chs {
			if c.Space == w.def.Kind && c.Bucket == w.def.Bucket && strings.HasPrefix(c.Key, w.def.Prefix) {
				batch = append(batch, c)
			}
		}
		if len(batch) > 0 && !m.deliverChanges(ctx, w, batch) {
			return
		}
		if covered != cursor {
			cursor = covered
			w.mu.Lock()
			w.cursor = cursor
			w.mu.Unlock()
			// Unsynced: a lost cursor delivers a batch again, never skips one.
			if err := m.putCursor(w.def.Name, cursor, false); err != nil {
				m.cfg.Logger.Error("watch: cannot record cursor", "watch", w.def.Name, "err", err)
			}
			m.trimChanges()
		}
		if len(chs) == 0 {
			select {
			case <-ready:
			case <-ctx.Done():
				return
			}
		}
	}
}

// changeRecord is one event of a watch's batch.
type changeRecord struct {
	EventID     string    `json:"eventID"`
	EventSource string    `json:"eventSource"` // mote:kv or mote:obj
	EventName   string    `json:"eventName"`   // put or delete
	SourceARN   string    `json:"eventSourceARN"`
	Op          string    `json:"op"`
	Bucket      string    `json:"bucket"`
	Key         string    `json:"key"`
	Seq         uint64    `json:"sequence"`
	Version     uint64    `json:"version,omitempty"`
	Size        int64     `json:"size,omitempty"`
	SHA256      string    `json:"sha256,omitempty"`
	Expired     bool      `json:"expired,omitempty"`
	Time        time.Time `json:"time"`
}

func changesEvent(batch []store.Change) []byte {
	ev := struct {
		Records []changeRecord `json:"Records"`
	}{Records: make([]changeRecord, len(batch))}
	for i, c := range batch {
		ev.Records[i] = changeRecord{
			EventID: strconv.FormatUint(c.Seq, 10), EventSource: "mote:" + c.Space, EventName: c.Op,
			SourceARN: "mote:" + c.Space + ":" + c.Bucket, Op: c.Op, Bucket: c.Bucket, Key: c.Key, Seq: c.Seq,
			Version: c.Version, Size: c.Size, SHA256: c.SHA256, Expired: c.Expired, Time: c.Time,
		}
	}
	raw, _ := json.Marshal(ev)
	return raw
}

// deliverChanges invokes the function with batch until it succeeds or has
// failed MaxAttempts times, then dead-letters the batch's events; false
// if ctx ended first (the batch is delivered again at the next start).
func (m *Manager) deliverChanges(ctx context.Context, w *watcher, batch []store.Change) bool {
	clock := m.cfg.Clock
	payload := changesEvent(batch)
	for attempt := 1; ; attempt++ {
		started := clock.Now()
		m.fired(Fire{Kind: "changes", Trigger: w.def.Name, Due: batch[0].Time, Fired: started, Started: started, Items: len(batch)})
		var res Result
		if err := m.allowed(w.def.Function, w.def.Bucket, false); err != nil {
			res.Err = err
		} else {
			res = m.cfg.Invoke(ctx, w.def.Function, payload)
		}
		if ctx.Err() != nil && res.Err != nil {
			return false
		}
		info := &BatchInfo{Started: started, Items: len(batch), Invocation: res.ID}
		info.Result, info.Error = runResult(res)
		var dead bool
		if res.Err != nil {
			info.Failed = len(batch)
			if attempt >= w.def.MaxAttempts {
				dead = true
				items := make([][]byte, len(batch))
				for i := range batch {
					items[i] = changesEvent(batch[i : i+1])
				}
				if err := m.cfg.Coord.PushAndDelete(w.def.Bucket, w.def.DeadLetterQueue, items, nil); err != nil {
					m.cfg.Logger.Error("watch: cannot dead-letter a batch; retrying it", "watch", w.def.Name, "err", err)
					dead = false
				}
			}
		}
		w.mu.Lock()
		w.stats.Batches++
		w.stats.LastBatch = info
		switch {
		case res.Err == nil:
			w.stats.Delivered += int64(len(batch))
		case dead:
			w.stats.Failures++
			w.stats.DeadLetter += int64(len(batch))
		default:
			w.stats.Failures++
		}
		w.mu.Unlock()
		m.noteRecorded(w.def.Name)
		if res.Err == nil || dead {
			return true
		}
		backoff := min(time.Duration(w.def.BackoffMs)*time.Millisecond<<min(attempt-1, 20), 5*time.Minute)
		if !sleepUntil(ctx, clock, clock.Now().Add(backoff)) {
			return false
		}
	}
}

// trimChanges deletes the change log's entries that every watch has
// handled.
func (m *Manager) trimChanges() {
	m.mu.Lock()
	upTo := m.cfg.Changes.Settled()
	for _, w := range m.watches {
		w.mu.Lock()
		upTo = min(upTo, w.cursor)
		w.mu.Unlock()
	}
	m.mu.Unlock()
	if upTo == 0 || upTo <= m.trimmed.Load() {
		return
	}
	if err := m.cfg.Changes.Trim(upTo); err != nil {
		m.cfg.Logger.Warn("watch: trimming the change log failed", "err", err)
		return
	}
	m.trimmed.Store(upTo)
}
