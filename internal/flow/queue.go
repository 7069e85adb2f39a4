package flow

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/store"
)

// queue is the in-memory order of the durable queue's ids. The store is the
// truth: an id here is only a hint to look at its queue record.
type queue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	ids    []string
	known  map[string]bool // queued here or running, so an id runs once
	redo   map[string]bool // re-driven while its last run was still ending
	closed bool
}

func (q *queue) init() {
	q.cond = sync.NewCond(&q.mu)
	q.known = make(map[string]bool)
	q.redo = make(map[string]bool)
}

func (q *queue) push(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pushLocked(id)
}

func (q *queue) pushLocked(id string) {
	if q.known[id] || q.closed {
		return
	}
	q.known[id] = true
	q.ids = append(q.ids, id)
	q.cond.Signal()
}

// pop waits for an id; false once the queue is closed.
func (q *queue) pop() (string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.ids) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return "", false
	}
	id := q.ids[0]
	q.ids[0] = ""
	q.ids = q.ids[1:]
	return id, true
}

func (q *queue) done(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.known, id)
	if q.redo[id] {
		delete(q.redo, id)
		q.pushLocked(id)
	}
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

// goAsync runs fn on a goroutine that Close waits for.
func (e *Engine) goAsync(fn func()) error {
	e.q.mu.Lock()
	if e.q.closed {
		e.q.mu.Unlock()
		return errs.E(errs.Unavailable, "flow: engine is closed")
	}
	e.wg.Add(1)
	e.q.mu.Unlock()
	go func() {
		defer e.wg.Done()
		fn()
	}()
	return nil
}

// Start runs the async queue: it re-queues what a previous process left
// (queued, or running when it stopped) and starts Config.Workers workers.
func (e *Engine) Start() error {
	var ids []string
	err := e.cfg.DB.Scan([]byte(keyQueue), func(k, _ []byte) bool {
		ids = append(ids, string(k[len(keyQueue):]))
		return true
	})
	if err != nil {
		return errs.Wrap(errs.Internal, err, "flow: read the async queue")
	}
	for _, id := range ids {
		e.q.push(id)
	}
	for i := 0; i < e.cfg.Workers; i++ {
		if err := e.goAsync(e.work); err != nil {
			return err
		}
	}
	if len(ids) > 0 {
		e.log.Info("flow: resumed async invocations", "count", len(ids))
	}
	if e.cfg.Retention > 0 {
		if err := e.goAsync(e.sweepLoop); err != nil {
			return err
		}
	}
	return nil
}

// sweepLoop deletes expired invocation records now and then, until the
// engine closes.
func (e *Engine) sweepLoop() {
	every := min(max(e.cfg.Retention/24, time.Minute), time.Hour)
	t := e.cfg.Clock.NewTicker(every)
	defer t.Stop()
	for {
		e.Sweep()
		select {
		case <-e.base.Done():
			return
		case <-t.C():
		}
	}
}

// Sweep deletes the records of invocations that started more than
// Config.Retention ago, and their places under their parents. Ids begin
// with their start time, so this is two range deletions.
func (e *Engine) Sweep() {
	if e.cfg.Retention <= 0 {
		return
	}
	cut := idAt(e.cfg.Clock.Now().Add(-e.cfg.Retention))
	e.w.apply(false, func(b *store.Batch) {
		b.DeleteRange([]byte(keyNode), append([]byte(keyNode), cut...))
		b.DeleteRange([]byte(keyChild), append([]byte(keyChild), cut...))
		// Whole buckets of leaf roots' segments: the cut's own bucket,
		// which may hold newer records, waits for a later sweep.
		b.DeleteRange([]byte(keySegment), bucketPrefix(cut))
	})
	e.w.flush()
}

func (e *Engine) work() {
	for {
		id, ok := e.q.pop()
		if !ok {
			return
		}
		e.runQueued(id)
		e.q.done(id)
	}
}

// enqueue writes a new async invocation durably and queues it.
// ctx's span, if any, is where its run's span will hang.
func (e *Engine) enqueue(ctx context.Context, fn string, payload []byte) (string, error) {
	now := e.cfg.Clock.Now()
	id := newIDAt(now)
	n := Node{ID: id, Root: id, Function: fn, Status: StatusQueued, Async: true, Start: now}
	item := queued{ID: id, Function: fn, Payload: payload, At: now, Trace: e.traceparent(ctx)}
	b := e.cfg.DB.NewBatch()
	defer b.Close()
	b.Set(queueKey(id), encodeQueued(&item))
	b.Set(nodeKey(id), encodeNode(&n))
	if err := e.cfg.DB.Commit(b, store.Durable); err != nil {
		return "", errs.Wrap(errs.Unavailable, err, "flow: could not queue the invocation")
	}
	e.q.push(id)
	return id, nil
}

// runQueued runs one async invocation from the queue to its end.
func (e *Engine) runQueued(id string) {
	log := e.log.With("id", id)
	raw, err := e.cfg.DB.Get(queueKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return // settled already
	}
	var item *queued
	if err == nil {
		item, err = decodeQueued(raw)
	}
	if err != nil {
		log.Error("flow: unreadable queue record", "err", err)
		return
	}
	e.w.flush() // the node's latest record must be readable
	n, err := e.load(id)
	if err != nil {
		n = &Node{ID: id, Root: id, Function: item.Function, Async: true, Start: item.At}
	}

	t := &tree{id: id}
	// A tree from the queue may have used Fallback before a restart.
	t.hosted.Store(true)
	t.live.Add(1)
	in := &inv{node: *n, payload: item.Payload, tree: t, durable: true, replay: true}
	pol, perr := e.cfg.Functions.Policy(item.Function)
	in.pol = pol
	// Attempts made in this drive before a crash count against the policy,
	// but a crashed invocation always gets one more try.
	in.max = max(max(pol.MaxAttempts, 1)-(n.Attempts-item.Attempts), 1)
	if err := e.loadJournal(in); err != nil {
		log.Error("flow: unreadable journal; children will run again", "err", err)
	}
	if perr != nil {
		_, _ = e.finish(in, nil, perr)
		return
	}
	if _, err := e.run(e.withTraceparent(e.base, item.Trace), in); err != nil && e.base.Err() == nil {
		log.Debug("flow: async invocation failed", "fn", item.Function, "err", err)
	}
}

func (e *Engine) loadJournal(in *inv) error {
	var derr error
	err := e.cfg.DB.Scan(journalPrefix(in.node.Root, in.node.ID), func(k, v []byte) bool {
		j, err := decodeJournal(v)
		if err != nil {
			derr = err
			return false
		}
		seq := uint64(0)
		for _, c := range k[len(k)-8:] {
			seq = seq<<8 | uint64(c)
		}
		if in.journal == nil {
			in.journal = make(map[uint64]*journalEntry)
		}
		in.journal[seq] = j
		in.tree.journaled.Store(true)
		return true
	})
	if err == nil {
		err = derr
	}
	return err
}

// settle records the end of an async invocation: its node (with output),
// the queue record gone, a dead letter if it failed, and the destination
// invocation its policy asks for.
func (e *Engine) settle(in *inv, out []byte, err error) {
	n := &in.node
	if err == nil {
		n.Output = out
	}
	nk, nv, qk := nodeKey(n.ID), encodeNode(n), queueKey(n.ID)
	var dk, dv []byte
	if err != nil {
		dk = deadKey(n.ID)
		dv = encodeQueued(&queued{ID: n.ID, Function: n.Function, Payload: in.payload, At: n.End,
			Attempts: n.Attempts, Code: n.ErrorCode, Message: n.ErrorMessage})
	}
	e.w.apply(true, func(b *store.Batch) {
		b.Set(nk, nv)
		b.Delete(qk)
		if dk != nil {
			b.Set(dk, dv)
		}
	})

	dest := in.pol.OnSuccess
	if err != nil {
		dest = in.pol.OnFailure
	}
	if dest == "" {
		return
	}
	if _, derr := e.enqueue(e.spanContext(in), dest, destinationEvent(n, out)); derr != nil {
		e.log.Error("flow: could not queue destination", "id", n.ID, "destination", dest, "err", derr)
	}
}

// Destination is the event an OnSuccess or OnFailure function receives, as
// JSON.
type Destination struct {
	ID       string          `json:"id"`
	Function string          `json:"function"`
	Status   Status          `json:"status"`
	Attempts int             `json:"attempts"`
	Output   json.RawMessage `json:"output,omitempty"`     // the output, when it is JSON
	OutputB  []byte          `json:"output_raw,omitempty"` // the output otherwise (base64)
	Error    *DestinationErr `json:"error,omitempty"`
}

// DestinationErr is the final error in a Destination event.
type DestinationErr struct {
	Code    errs.Code `json:"code"`
	Message string    `json:"message"`
}

func destinationEvent(n *Node, out []byte) []byte {
	d := Destination{ID: n.ID, Function: n.Function, Status: n.Status, Attempts: n.Attempts}
	if n.ErrorCode != "" {
		d.Error = &DestinationErr{Code: n.ErrorCode, Message: n.ErrorMessage}
	} else if json.Valid(out) {
		d.Output = out
	} else {
		d.OutputB = out
	}
	b, _ := json.Marshal(d)
	return b
}

// DeadLetter is an async invocation that failed its last attempt.
type DeadLetter struct {
	ID           string    `json:"id"`
	Function     string    `json:"function"`
	At           time.Time `json:"at"`
	Attempts     int       `json:"attempts"`
	ErrorCode    errs.Code `json:"error_code"`
	ErrorMessage string    `json:"error"`
	PayloadBytes int       `json:"payload_bytes"`
}

// DeadLetters lists up to limit dead letters (0: all), oldest first.
func (e *Engine) DeadLetters(limit int) ([]DeadLetter, error) {
	e.w.flush()
	var out []DeadLetter
	var derr error
	err := e.cfg.DB.Scan([]byte(keyDead), func(_, v []byte) bool {
		q, err := decodeQueued(v)
		if err != nil {
			derr = err
			return false
		}
		out = append(out, DeadLetter{ID: q.ID, Function: q.Function, At: q.At, Attempts: q.Attempts,
			ErrorCode: q.Code, ErrorMessage: q.Message, PayloadBytes: len(q.Payload)})
		return limit <= 0 || len(out) < limit
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "flow: read dead letters")
	}
	return out, nil
}

// Redrive queues dead letter id again, under the same invocation id, with
// its policy's attempts afresh.
func (e *Engine) Redrive(id string) error {
	if !validID(id) {
		return errs.E(errs.BadRequest, "flow: malformed invocation id %q", id)
	}
	e.q.mu.Lock() // one redrive of an id at a time
	defer e.q.mu.Unlock()
	e.w.flush()
	raw, err := e.cfg.DB.Get(deadKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return errs.E(errs.NotFound, "flow: no dead letter %s", id)
	}
	var dl *queued
	if err == nil {
		dl, err = decodeQueued(raw)
	}
	if err != nil {
		return errs.Wrap(errs.Internal, err, "flow: read dead letter")
	}
	n, err := e.load(id)
	if err != nil {
		n = &Node{ID: id, Root: id, Function: dl.Function, Async: true}
	}
	n.Status, n.ErrorCode, n.ErrorMessage, n.Output = StatusQueued, "", "", nil
	n.Start, n.End, n.WallMicros = e.cfg.Clock.Now(), time.Time{}, 0
	item := queued{ID: id, Function: dl.Function, Payload: dl.Payload, At: n.Start, Attempts: n.Attempts}
	b := e.cfg.DB.NewBatch()
	defer b.Close()
	b.Delete(deadKey(id))
	b.Set(queueKey(id), encodeQueued(&item))
	b.Set(nodeKey(id), encodeNode(n))
	if err := e.cfg.DB.Commit(b, store.Durable); err != nil {
		return errs.Wrap(errs.Unavailable, err, "flow: could not re-drive")
	}
	if e.q.known[id] {
		// Its dead-lettering run has not quite returned: queue it again
		// when it does.
		e.q.redo[id] = true
	} else {
		e.q.pushLocked(id)
	}
	return nil
}

// load reads one node record, its own or in a segment (writer.go).
func (e *Engine) load(id string) (*Node, error) {
	raw, err := e.cfg.DB.Get(nodeKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return e.loadLeaf(id)
	}
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "flow: read invocation")
	}
	return decodeNode(raw)
}

// loadLeaf finds a leaf root's record in the segments of its id's bucket.
// A record's packed id sits at a fixed place (version, flags, id), so the
// scan compares bytes and decodes only the record it finds.
func (e *Engine) loadLeaf(id string) (*Node, error) {
	want := appendPackedID(make([]byte, 0, idLen/2), id)
	var found []byte
	var bad bool
	err := e.cfg.DB.Scan(bucketPrefix(id), func(_, v []byte) bool {
		if len(v) == 0 || v[0] != segmentVersion {
			bad = true
			return false
		}
		for d := (dec{b: v[1:]}); len(d.b) > 0; {
			rec := d.by()
			if d.bad {
				bad = true
				return false
			}
			if len(rec) >= 2+len(want) && rec[0] == nodeVersion && rec[1]&flagPackedIDs != 0 && string(rec[2:2+len(want)]) == string(want) {
				found = append([]byte(nil), rec...)
				return false
			}
		}
		return true
	})
	switch {
	case err != nil:
		return nil, errs.Wrap(errs.Internal, err, "flow: read invocation")
	case found != nil:
		return decodeNode(found)
	case bad:
		return nil, errs.E(errs.Internal, "flow: corrupt segment record")
	}
	return nil, errs.E(errs.NotFound, "flow: no invocation %s", id)
}

// lookup returns id's record, or a snapshot if it is a child still running.
func (e *Engine) lookup(id string) (*Node, error) {
	if in, ok := e.live.get(id); ok {
		return in.snapshot(), nil
	}
	// A child removed from live had its record queued before: flush it.
	e.w.flush()
	return e.load(id)
}

// Get returns invocation id with its children, recursively, up to
// Config.TreeLimit nodes in all (nodes cut off are marked Truncated).
func (e *Engine) Get(id string) (*Node, error) {
	if !validID(id) {
		return nil, errs.E(errs.BadRequest, "flow: malformed invocation id %q", id)
	}
	root, err := e.lookup(id)
	if err != nil {
		return nil, err
	}
	budget := e.cfg.TreeLimit - 1
	level := []*Node{root}
	for len(level) > 0 {
		var next []*Node
		for _, n := range level {
			var ids []string
			p := childPrefix(n.ID)
			err := e.cfg.DB.Scan(p, func(k, _ []byte) bool {
				if budget-len(ids) <= 0 {
					n.Truncated = true
					return false
				}
				ids = append(ids, string(k[len(p):]))
				return true
			})
			if err != nil {
				return nil, errs.Wrap(errs.Internal, err, "flow: read call tree")
			}
			// Children still running have no record yet.
			for _, in := range e.live.childrenOf(n.ID) {
				if slices.Contains(ids, in.node.ID) {
					continue
				}
				if budget-len(ids) <= 0 {
					n.Truncated = true
					break
				}
				ids = append(ids, in.node.ID)
			}
			slices.Sort(ids)
			for _, cid := range ids {
				c, err := e.lookup(cid)
				if errors.Is(err, &errs.Error{Code: errs.NotFound}) {
					continue // ended between the scan and now and not yet visible: rare, skip
				}
				if err != nil {
					return nil, err
				}
				n.Children = append(n.Children, c)
				next = append(next, c)
			}
			budget -= len(ids)
		}
		level = next
	}
	return root, nil
}
