package cluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mote-run/mote/internal/errs"
)

// AsyncRecord is the outcome of an async invocation, kept in the async
// bucket under its id once it ran.
type AsyncRecord struct {
	ID         string    `json:"id"`
	Function   string    `json:"function"`
	Status     string    `json:"status"` // succeeded or failed (then also in the DLQ)
	Error      string    `json:"error,omitempty"`
	Invocation string    `json:"invocation,omitempty"` // the call tree's root id (mote trace)
	Node       string    `json:"node"`
	Deliveries uint64    `json:"deliveries"` // > 1: it was handed out again after a node died
	At         time.Time `json:"at"`
}

// newID returns an async invocation id: 24 hex digits, sortable by time.
func newID() string {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixNano()))
	rand.Read(b[8:])
	return hex.EncodeToString(b[:])
}

// Enqueue queues an async invocation of fn in the cluster's stream and
// returns its id once JetStream has it on a quorum of nodes, on disk.
// A repeat of the same id within two minutes is dropped by the stream
// (Nats-Msg-Id), so a client that retries after a lost answer queues it
// once.
func (n *Node) Enqueue(ctx context.Context, fn string, payload []byte) (string, error) {
	id := newID()
	m := nats.NewMsg(n.prefix + "async." + fn)
	m.Header.Set(hFn, fn)
	m.Header.Set(hID, id)
	m.Data = payload
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	for {
		_, err := n.js.PublishMsg(ctx, m, jetstream.WithMsgID(id))
		if err == nil {
			return id, nil
		}
		// No answer is not a no: publish again with the same id, which
		// the stream drops if the first one got there.
		if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrNoStreamResponse) {
			if ctx.Err() == nil {
				continue
			}
		}
		return "", unavailable(err, "queueing the invocation")
	}
}

// AsyncStatus returns the outcome of async invocation id, or
// errs.NotFound while it has not run (or no such id was queued).
func (n *Node) AsyncStatus(ctx context.Context, id string) (*AsyncRecord, error) {
	e, err := n.done.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return nil, errs.E(errs.NotFound, "async invocation %q has not run yet, or was never queued", id)
	}
	if err != nil {
		return nil, unavailable(err, "reading async outcomes")
	}
	var r AsyncRecord
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, errs.E(errs.Internal, "corrupt async record %s", id)
	}
	return &r, nil
}

// maxDeliver is how often an async invocation is handed out: again after
// its node died, or after it failed as unavailable.
const maxDeliver = 20

// startWorkers consumes the async stream with this node's workers, once
// the shared consumer answers: after a crash its Raft group may take a
// while to elect a leader, and the node serves meanwhile.
func (n *Node) startWorkers(ctx context.Context) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		start := time.Now()
		for attempt := 0; ctx.Err() == nil; attempt++ {
			err := n.consume(ctx)
			if err == nil {
				return
			}
			if attempt%10 == 9 {
				n.log.Warn("async workers: the cluster's queue does not answer yet; retrying", "err", err, "waited", time.Since(start).Round(time.Second))
			}
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
}

func (n *Node) consume(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	cons, err := n.q.Consumer(cctx, "workers")
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = n.q.CreateOrUpdateConsumer(cctx, jetstream.ConsumerConfig{
			Durable:       "workers",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       n.cfg.AckWait,
			MaxDeliver:    maxDeliver,
			MaxAckPending: 4096,
			Replicas:      n.cfg.Replicas,
			Description:   "Mote async workers, every node",
		})
	}
	if err != nil {
		return unavailable(err, "the async consumer")
	}
	sem := make(chan struct{}, n.cfg.Workers)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		n.wg.Add(1)
		go func() {
			defer func() { <-sem; n.wg.Done() }()
			n.runQueued(ctx, m)
		}()
	}, jetstream.PullMaxMessages(n.cfg.Workers), jetstream.PullExpiry(3*time.Second), jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return unavailable(err, "consuming async invocations")
	}
	n.consMu.Lock()
	n.cons = cc
	n.consMu.Unlock()
	return nil
}

// runQueued runs one async invocation, records its outcome, sends a
// failure to the DLQ, and only then acknowledges it: a node that dies
// before that leaves it to be handed out again after AckWait.
func (n *Node) runQueued(ctx context.Context, m jetstream.Msg) {
	fn, id := m.Headers().Get(hFn), m.Headers().Get(hID)
	meta, _ := m.Metadata()
	// Signs of life while it runs, so a long invocation is not handed to
	// another node.
	alive, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		t := time.NewTicker(n.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-alive.Done():
				return
			case <-t.C:
				m.InProgress()
			}
		}
	}()
	root, err := n.local.RunAsync(ctx, fn, m.Data())
	if errors.Is(err, ErrNotRun) || ctx.Err() != nil {
		m.Nak() // this node is stopping: another takes it
		return
	}
	// unavailable says it may not have run (its node died, the cluster
	// had no quorum): at least once means run it again, until the
	// deliveries run out.
	if errs.CodeOf(err) == errs.Unavailable && meta != nil && meta.NumDelivered < maxDeliver {
		m.NakWithDelay(time.Duration(meta.NumDelivered) * 100 * time.Millisecond)
		return
	}
	rec := AsyncRecord{ID: id, Function: fn, Status: "succeeded", Invocation: root, Node: n.cfg.Node, At: time.Now().UTC()}
	if meta != nil {
		rec.Deliveries = meta.NumDelivered
	}
	if err != nil {
		rec.Status, rec.Error = "failed", errs.MessageOf(err)
	}
	b, _ := json.Marshal(rec)
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err != nil {
		dm := nats.NewMsg(n.prefix + "dlq." + fn)
		dm.Header = m.Headers()
		dm.Header.Set(hCode, string(errs.CodeOf(err)))
		dm.Header.Set(hErr, rec.Error)
		dm.Data = m.Data()
		if _, perr := n.js.PublishMsg(wctx, dm, jetstream.WithMsgID(id)); perr != nil {
			n.log.Warn("sending a failed async invocation to the DLQ; it will run again", "id", id, "err", perr)
			m.Nak()
			return
		}
	}
	if _, perr := n.done.Put(wctx, id, b); perr != nil {
		n.log.Warn("recording an async outcome; it will run again", "id", id, "err", perr)
		m.Nak()
		return
	}
	if aerr := m.DoubleAck(wctx); aerr != nil {
		n.log.Warn("acknowledging an async invocation; it may run again", "id", id, "err", aerr)
	}
}

// DeadLetter is a failed async invocation in the DLQ stream.
type DeadLetter struct {
	ID       string    `json:"id"`
	Function string    `json:"function"`
	Code     string    `json:"code"`
	Error    string    `json:"error"`
	Payload  []byte    `json:"payload"`
	At       time.Time `json:"at"`
}

// DeadLetters returns up to limit of the newest dead letters.
func (n *Node) DeadLetters(ctx context.Context, limit int) ([]DeadLetter, error) {
	info, err := n.dlq.Info(ctx)
	if err != nil {
		return nil, unavailable(err, "reading the DLQ")
	}
	var out []DeadLetter
	for seq := info.State.LastSeq; seq >= info.State.FirstSeq && seq > 0 && len(out) < limit; seq-- {
		rm, err := n.dlq.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return out, unavailable(err, "reading the DLQ")
		}
		out = append(out, DeadLetter{ID: rm.Header.Get(hID), Function: rm.Header.Get(hFn), Code: rm.Header.Get(hCode), Error: rm.Header.Get(hErr), Payload: rm.Data, At: rm.Time})
	}
	return out, nil
}
