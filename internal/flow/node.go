package flow

import (
	"encoding/binary"
	"hash/fnv"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/store"
)

// Status is where an invocation stands.
type Status string

// The statuses an invocation moves through: queued (async, not yet picked
// up), running (including between retries), then one final status.
const (
	StatusQueued    Status = "queued"
	StatusRunning   Status = "running"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusTimeout   Status = "timeout"
	StatusCancelled Status = "cancelled"
)

// Final reports whether s is an end state.
func (s Status) Final() bool {
	return s == StatusSucceeded || s == StatusFailed || s == StatusTimeout || s == StatusCancelled
}

// statusOf maps an invocation's final error to its status.
func statusOf(err error) Status {
	switch errs.CodeOf(err) {
	case "":
		return StatusSucceeded
	case errs.Timeout:
		return StatusTimeout
	case errs.Cancelled:
		return StatusCancelled
	default:
		return StatusFailed
	}
}

// Node is one invocation in a call tree, as stored and as served by
// GET /v1/invocations/{id}. CPU and billed time are the invocation's own,
// summed over its attempts; time its children ran is never added to it.
type Node struct {
	ID           string    `json:"id"`
	Parent       string    `json:"parent,omitempty"`
	Root         string    `json:"root"`
	Depth        int       `json:"depth"`
	Function     string    `json:"function"`
	Version      string    `json:"version,omitempty"`
	Status       Status    `json:"status"`
	Async        bool      `json:"async,omitempty"`
	Attempts     int       `json:"attempts"`
	Start        time.Time `json:"start"`
	End          time.Time `json:"end,omitzero"`
	WallMicros   int64     `json:"wall_us"`
	CPUMicros    int64     `json:"cpu_us"`
	BilledMs     int64     `json:"billed_ms"`
	Cold         bool      `json:"cold,omitempty"`
	ErrorCode    errs.Code `json:"error_code,omitempty"`
	ErrorMessage string    `json:"error,omitempty"`
	// Output is kept for async invocations only: a synchronous caller
	// already received it.
	Output []byte `json:"output,omitempty"`

	Children []*Node `json:"children,omitempty"`
	// Truncated is set where Get stopped loading children to stay within
	// Config.TreeLimit.
	Truncated bool `json:"truncated,omitempty"`
}

// Ref identifies one invocation to the services that serve its other host
// calls (Config.Fallback).
type Ref struct {
	ID, Parent, Root, Function string
	Depth                      int
}

// Keys under store.PrefixFlow. Invocation ids have a fixed length, so a
// parent's children and a root's journal are plain prefix scans.
const (
	keyNode    = store.PrefixFlow + "n/" // n/{id} → node
	keyChild   = store.PrefixFlow + "c/" // c/{parent}/{child} → empty
	keyJournal = store.PrefixFlow + "j/" // j/{root}/{parent}/{seq} → journal entry
	keyQueue   = store.PrefixFlow + "q/" // q/{id} → queued async invocation
	keyDead    = store.PrefixFlow + "d/" // d/{id} → dead letter
	keySegment = store.PrefixFlow + "s/" // s/{id} → leaf roots' records, the first's id (writer.go)
)

func nodeKey(id string) []byte { return append([]byte(keyNode), id...) }

func childKey(parent, child string) []byte {
	k := make([]byte, 0, len(keyChild)+len(parent)+1+len(child))
	k = append(append(append(append(k, keyChild...), parent...), '/'), child...)
	return k
}

func childPrefix(parent string) []byte { return append(append([]byte(keyChild), parent...), '/') }

func journalPrefix(root, parent string) []byte {
	k := append(append([]byte(keyJournal), root...), '/')
	if parent != "" {
		k = append(append(k, parent...), '/')
	}
	return k
}

func journalKey(root, parent string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(journalPrefix(root, parent), seq)
}

func queueKey(id string) []byte { return append([]byte(keyQueue), id...) }
func deadKey(id string) []byte  { return append([]byte(keyDead), id...) }

// bucketLen is how many leading digits of an id name its segment bucket:
// the top of its start time in nanoseconds, buckets of 16^6 ns ≈ 17 ms.
const bucketLen = 10

func segmentKey(first string) []byte { return append([]byte(keySegment), first...) }

func bucketPrefix(id string) []byte { return append([]byte(keySegment), id[:bucketLen]...) }

// idLen is the length of every invocation id.
const idLen = 24

var idSeq atomic.Uint32

func init() { idSeq.Store(rand.Uint32()) }

// idAt is the 16-digit time prefix of ids made at t: every id made before
// t sorts below it.
func idAt(t time.Time) string {
	var b [16]byte
	putHex(b[:], uint64(t.UnixNano()))
	return string(b[:])
}

// newID returns a unique id that sorts by creation time: 16 hex digits of
// the Unix time in nanoseconds, then 8 of a counter seeded at random per
// process (so two processes starting in the same nanosecond do not clash).
func newID() string { return newIDAt(time.Now()) }

// newIDAt is newID for an invocation created at t.
func newIDAt(t time.Time) string {
	var b [idLen]byte
	putHex(b[:16], uint64(t.UnixNano()))
	putHex(b[16:], uint64(idSeq.Add(1)))
	return string(b[:])
}

// putHex writes the low 4*len(b) bits of v into b as lower-case hex digits.
func putHex(b []byte, v uint64) {
	const hex = "0123456789abcdef"
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = hex[v&0xf]
		v >>= 4
	}
}

// validID reports whether id has the shape newID gives, so that ids from
// HTTP paths cannot address other keys.
func validID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// The stored forms are a version byte then fields as uvarints and
// uvarint-length strings: a node write is a few hundred nanoseconds of
// encoding, where JSON would cost microseconds.
const recordVersion = 1

type enc struct{ b []byte }

func (e *enc) u(v uint64)  { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) i(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) s(v string)  { e.u(uint64(len(v))); e.b = append(e.b, v...) }
func (e *enc) by(v []byte) { e.u(uint64(len(v))); e.b = append(e.b, v...) }
func (e *enc) t(v time.Time) {
	if v.IsZero() {
		e.i(0)
		return
	}
	e.i(v.UnixNano())
}

type dec struct {
	b   []byte
	bad bool
}

func (d *dec) u() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) i() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) by() []byte {
	n := d.u()
	if d.bad || n > uint64(len(d.b)) {
		d.bad = true
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) s() string { return string(d.by()) }

func (d *dec) t() time.Time {
	v := d.i()
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v)
}

const (
	flagCold = 1 << iota
	flagAsync
	// Version 2 only:
	flagPackedIDs // ids stored as 12 bytes each (they are all newID's shape)
	flagParent    // a parent id follows the id
	flagOwnRoot   // the root is the node itself (no root id stored)
)

// nodeVersion is the version encodeNode writes. Version 1 records (every
// field a uvarint or a string) are still read; version 2 halves a typical
// record, which is what the store writes, flushes and compacts for every
// invocation: ids packed to bytes, a root's own id not repeated, the
// status as a number, the end as a delta from the start.
const nodeVersion = 2

// statuses numbers the statuses in version 2 records; 0 is a status
// stored as a string.
var statuses = [...]Status{StatusQueued, StatusRunning, StatusSucceeded, StatusFailed, StatusTimeout, StatusCancelled}

func encodeNode(n *Node) []byte {
	return appendNode(make([]byte, 0, 64+len(n.Function)+len(n.ErrorMessage)+len(n.Output)), n)
}

// appendNode appends n's record to b.
func appendNode(b []byte, n *Node) []byte {
	packed := validID(n.ID) && (n.Parent == "" || validID(n.Parent)) && (n.Root == n.ID || validID(n.Root))
	flags := n.flags()
	if packed {
		flags |= flagPackedIDs
		if n.Parent != "" {
			flags |= flagParent
		}
		if n.Root == n.ID {
			flags |= flagOwnRoot
		}
	}
	e := enc{b: b}
	e.b = append(e.b, nodeVersion)
	e.u(flags)
	if packed {
		e.b = appendPackedID(e.b, n.ID)
		if n.Parent != "" {
			e.b = appendPackedID(e.b, n.Parent)
		}
		if n.Root != n.ID {
			e.b = appendPackedID(e.b, n.Root)
		}
	} else {
		e.s(n.ID)
		e.s(n.Parent)
		e.s(n.Root)
	}
	e.u(uint64(n.Depth))
	e.s(n.Function)
	e.s(n.Version)
	st := 0
	for i, x := range statuses {
		if x == n.Status {
			st = i + 1
		}
	}
	e.u(uint64(st))
	if st == 0 {
		e.s(string(n.Status))
	}
	e.u(uint64(n.Attempts))
	e.t(n.Start)
	// The end as 1 + its distance from the start; 0 is no end.
	switch {
	case n.End.IsZero():
		e.u(0)
	case n.Start.IsZero() || n.End.Before(n.Start):
		e.u(1)
		e.t(n.End)
	default:
		e.u(2 + uint64(n.End.UnixNano()-n.Start.UnixNano()))
	}
	e.nodeTail(n)
	return e.b
}

// flags is n's flags that both record versions store.
func (n *Node) flags() uint64 {
	var flags uint64
	if n.Cold {
		flags |= flagCold
	}
	if n.Async {
		flags |= flagAsync
	}
	return flags
}

// setFlags sets what flags says of n in either record version.
func (n *Node) setFlags(flags uint64) {
	n.Cold = flags&flagCold != 0
	n.Async = flags&flagAsync != 0
}

// nodeTail encodes the fields both record versions end with (dec.finish
// reads them): the figures, the error and the output.
func (e *enc) nodeTail(n *Node) {
	e.i(n.WallMicros)
	e.i(n.CPUMicros)
	e.i(n.BilledMs)
	e.s(string(n.ErrorCode))
	e.s(n.ErrorMessage)
	e.by(n.Output)
}

// appendPackedID appends a valid id's 24 hex digits as 12 bytes.
func appendPackedID(b []byte, id string) []byte {
	for i := 0; i < idLen; i += 2 {
		b = append(b, unhex(id[i])<<4|unhex(id[i+1]))
	}
	return b
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}

// packedID reads a packed id.
func (d *dec) packedID() string {
	if d.bad || len(d.b) < idLen/2 {
		d.bad = true
		return ""
	}
	const hex = "0123456789abcdef"
	var b [idLen]byte
	for i, x := range d.b[:idLen/2] {
		b[2*i], b[2*i+1] = hex[x>>4], hex[x&0xf]
	}
	d.b = d.b[idLen/2:]
	return string(b[:])
}

func decodeNode(b []byte) (*Node, error) {
	if len(b) > 0 && b[0] == nodeVersion {
		return decodeNode2(b[1:])
	}
	if len(b) == 0 || b[0] != recordVersion {
		return nil, errs.E(errs.Internal, "flow: unknown node record version")
	}
	d := dec{b: b[1:]}
	n := &Node{}
	n.ID = d.s()
	n.Parent = d.s()
	n.Root = d.s()
	n.Depth = int(d.u())
	n.Function = d.s()
	n.Version = d.s()
	n.Status = Status(d.s())
	n.setFlags(d.u())
	n.Attempts = int(d.u())
	n.Start = d.t()
	n.End = d.t()
	return d.finish(n)
}

// finish decodes the fields both record versions end with: the figures,
// the error and the output.
func (d *dec) finish(n *Node) (*Node, error) {
	n.WallMicros = d.i()
	n.CPUMicros = d.i()
	n.BilledMs = d.i()
	n.ErrorCode = errs.Code(d.s())
	n.ErrorMessage = d.s()
	if out := d.by(); len(out) > 0 {
		n.Output = append([]byte(nil), out...)
	}
	if d.bad {
		return nil, errs.E(errs.Internal, "flow: corrupt node record")
	}
	return n, nil
}

func decodeNode2(b []byte) (*Node, error) {
	d := dec{b: b}
	n := &Node{}
	flags := d.u()
	n.setFlags(flags)
	if flags&flagPackedIDs != 0 {
		n.ID = d.packedID()
		if flags&flagParent != 0 {
			n.Parent = d.packedID()
		}
		n.Root = n.ID
		if flags&flagOwnRoot == 0 {
			n.Root = d.packedID()
		}
	} else {
		n.ID = d.s()
		n.Parent = d.s()
		n.Root = d.s()
	}
	n.Depth = int(d.u())
	n.Function = d.s()
	n.Version = d.s()
	switch st := d.u(); {
	case st == 0:
		n.Status = Status(d.s())
	case st <= uint64(len(statuses)):
		n.Status = statuses[st-1]
	default:
		d.bad = true
	}
	n.Attempts = int(d.u())
	n.Start = d.t()
	switch end := d.u(); end {
	case 0:
	case 1:
		n.End = d.t()
	default:
		n.End = time.Unix(0, n.Start.UnixNano()+int64(end-2))
	}
	return d.finish(n)
}

// journalEntry is a completed child call, kept so that a retried parent
// gets the same result without running the child again.
type journalEntry struct {
	Child    string // the child's invocation id
	Function string
	Hash     uint64 // of function and payload: a call that differs is not replayed
	Output   []byte
}

func callHash(fn string, payload []byte) uint64 {
	h := fnv.New64a()
	h.Write([]byte(fn))
	h.Write([]byte{0})
	h.Write(payload)
	return h.Sum64()
}

func encodeJournal(j *journalEntry) []byte {
	e := enc{b: make([]byte, 0, 48+len(j.Output))}
	e.b = append(e.b, recordVersion)
	e.s(j.Child)
	e.s(j.Function)
	e.u(j.Hash)
	e.by(j.Output)
	return e.b
}

func decodeJournal(b []byte) (*journalEntry, error) {
	if len(b) == 0 || b[0] != recordVersion {
		return nil, errs.E(errs.Internal, "flow: unknown journal record version")
	}
	d := dec{b: b[1:]}
	j := &journalEntry{Child: d.s(), Function: d.s(), Hash: d.u()}
	j.Output = append([]byte(nil), d.by()...)
	if d.bad {
		return nil, errs.E(errs.Internal, "flow: corrupt journal record")
	}
	return j, nil
}

// queued is an async invocation waiting in the durable queue, and (with
// the error set) a dead letter.
type queued struct {
	ID       string
	Function string
	Payload  []byte
	At       time.Time // enqueued, or dead-lettered
	Attempts int       // dead letters: attempts made
	Code     errs.Code // dead letters: the last error
	Message  string
	// Trace is the W3C traceparent the invocation was queued under, so
	// its run joins its caller's trace; empty: none. Records written
	// before it existed end without it.
	Trace string
}

func encodeQueued(q *queued) []byte {
	e := enc{b: make([]byte, 0, 64+len(q.Payload)+len(q.Message))}
	e.b = append(e.b, recordVersion)
	e.s(q.ID)
	e.s(q.Function)
	e.by(q.Payload)
	e.t(q.At)
	e.u(uint64(q.Attempts))
	e.s(string(q.Code))
	e.s(q.Message)
	if q.Trace != "" {
		e.s(q.Trace)
	}
	return e.b
}

func decodeQueued(b []byte) (*queued, error) {
	if len(b) == 0 || b[0] != recordVersion {
		return nil, errs.E(errs.Internal, "flow: unknown queue record version")
	}
	d := dec{b: b[1:]}
	q := &queued{ID: d.s(), Function: d.s()}
	q.Payload = append([]byte(nil), d.by()...)
	q.At = d.t()
	q.Attempts = int(d.u())
	q.Code = errs.Code(d.s())
	q.Message = d.s()
	if len(d.b) > 0 {
		q.Trace = d.s()
	}
	if d.bad {
		return nil, errs.E(errs.Internal, "flow: corrupt queue record")
	}
	return q, nil
}
