// Package logs keeps every function's log lines in files of their own
// under the data directory, so that they survive restarts, and lets
// clients search them and follow them live: `mote logs NAME [-f]`.
//
// Add is on the invocation path, so it only appends the line to a slice
// in memory and hands it to followers; a flusher goroutine writes the
// slice out every Config.FlushEvery (and before every read), as NDJSON
// segments per function (DIR/FN/NNNNNNNNNNNNNNNNNNNN.ndjson, named by the
// time of their first line). Retention is per function, by size
// (Config.MaxBytes, oldest segments first) and by age (Config.MaxAge).
// A crash loses at most the last FlushEvery of lines: logs are for
// watching and debugging, not audit.
package logs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Line is one log line of a function, or the report of one invocation
// (Stream "report").
type Line struct {
	Time       time.Time `json:"time"`
	Function   string    `json:"function"`
	Invocation string    `json:"invocation,omitempty"`
	Stream     string    `json:"stream,omitempty"` // "log", "stdout", "stderr", "platform", "report"
	Text       string    `json:"text,omitempty"`
	Report     Report    `json:"report,omitzero"` // with Stream "report"
}

// Report is what an invocation's attempt cost and how it ended: the
// source of the START, END and REPORT lines `mote logs` prints.
type Report struct {
	Start      time.Time `json:"start"`
	Version    string    `json:"version,omitempty"`
	Attempt    int       `json:"attempt,omitempty"`
	DurationUs int64     `json:"duration_us"`
	BilledMs   int64     `json:"billed_ms"`
	CPUUs      int64     `json:"cpu_us"`
	MemoryMB   int64     `json:"memory_mb"`
	MaxMemMB   int64     `json:"max_memory_mb,omitempty"` // where the runtime knows it (wasm reactors)
	InitUs     int64     `json:"init_us,omitempty"`       // a cold start's instance start
	ErrorCode  string    `json:"error_code,omitempty"`
	Error      string    `json:"error,omitempty"`       // the platform's message
	ErrorType  string    `json:"error_type,omitempty"`  // from the function's own error payload
	StackTrace []string  `json:"stack_trace,omitempty"` // from the function's own error payload
}

// Stream names.
const (
	StreamReport   = "report"
	StreamPlatform = "platform"
)

// kickAt is how many pending lines wake the flusher before its tick: the
// two buffers that take turns stay this small, so that Add rarely grows
// one.
const kickAt = 4096

// MaxLine is the longest line kept; longer ones are cut.
const MaxLine = 16 << 10

// Config configures a Store.
type Config struct {
	Dir         string        // where the files go (required)
	SegmentSize int64         // a segment is closed past this; default 4 MiB
	MaxBytes    int64         // per function, all segments; default 64 MiB
	MaxAge      time.Duration // segments last written before this are deleted; default 7 days
	FlushEvery  time.Duration // default 200 ms
	MaxPending  int           // lines held between flushes; more are dropped; default 65,536
	Now         func() time.Time
	Logger      *slog.Logger
}

func (c *Config) setDefaults() {
	if c.SegmentSize <= 0 {
		c.SegmentSize = 4 << 20
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 64 << 20
	}
	if c.MaxAge <= 0 {
		c.MaxAge = 7 * 24 * time.Hour
	}
	if c.FlushEvery <= 0 {
		c.FlushEvery = 200 * time.Millisecond
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 1 << 16
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Store keeps lines per function. Lock order: wmu, then mu.
type Store struct {
	cfg Config

	mu      sync.Mutex
	pending []Line
	spare   []Line
	dropped int64
	subs    map[string]map[chan Line]struct{} // by function; "" follows all
	closed  bool

	wmu     sync.Mutex            // the files
	writers map[string]*segWriter // open segment per function

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

type segWriter struct {
	f    *os.File
	w    *bufio.Writer
	size int64
}

// Open opens (creating) the store in cfg.Dir and starts its flusher.
func Open(cfg Config) (*Store, error) {
	cfg.setDefaults()
	if cfg.Dir == "" {
		return nil, fmt.Errorf("logs: Config.Dir is required")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("logs: %w", err)
	}
	s := &Store{
		cfg:     cfg,
		pending: make([]Line, 0, kickAt),
		spare:   make([]Line, 0, kickAt),
		subs:    map[string]map[chan Line]struct{}{},
		writers: map[string]*segWriter{},
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	s.Sweep()
	go s.flusher()
	return s, nil
}

// Add appends a line and hands it to followers. A follower that is not
// keeping up loses lines rather than slowing the function down.
func (s *Store) Add(l Line) {
	if len(l.Text) > MaxLine {
		l.Text = l.Text[:MaxLine] + "…"
	}
	if l.Time.IsZero() {
		l.Time = s.cfg.Now().UTC()
	}
	s.mu.Lock()
	if s.closed || len(s.pending) >= s.cfg.MaxPending {
		s.dropped++
		s.mu.Unlock()
		return
	}
	s.pending = append(s.pending, l)
	full := len(s.pending) == kickAt
	for ch := range s.subs[l.Function] {
		select {
		case ch <- l:
		default:
		}
	}
	for ch := range s.subs[""] {
		select {
		case ch <- l:
		default:
		}
	}
	s.mu.Unlock()
	if full {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

func (s *Store) flusher() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.FlushEvery)
	defer t.Stop()
	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	for {
		select {
		case <-s.stop:
			s.Flush()
			return
		case <-t.C:
		case <-s.kick:
		case <-sweep.C:
			s.Sweep()
		}
		s.Flush()
	}
}

// Flush writes the pending lines to their files.
func (s *Store) Flush() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	batch := s.pending
	s.pending, s.spare = s.spare[:0], nil
	dropped := s.dropped
	s.dropped = 0
	s.mu.Unlock()
	if dropped > 0 {
		s.cfg.Logger.Warn("logs: lines dropped: the writer fell behind", "lines", dropped)
	}
	if len(batch) == 0 {
		s.mu.Lock()
		s.spare = batch
		s.mu.Unlock()
		return
	}
	var buf []byte
	dirty := map[*segWriter]bool{}
	for i := range batch {
		l := &batch[i]
		w, err := s.writer(l.Function, l.Time)
		if err != nil {
			s.cfg.Logger.Error("logs: opening a segment", "fn", l.Function, "err", err)
			continue
		}
		buf = append(appendLine(buf[:0], l), '\n')
		n, err := w.w.Write(buf)
		w.size += int64(n)
		dirty[w] = true
		if err != nil {
			s.cfg.Logger.Error("logs: writing", "fn", l.Function, "err", err)
		}
		if w.size >= s.cfg.SegmentSize {
			s.closeWriter(l.Function)
			delete(dirty, w)
			s.trim(l.Function)
		}
		*l = Line{}
	}
	for w := range dirty {
		if err := w.w.Flush(); err != nil {
			s.cfg.Logger.Error("logs: writing", "err", err)
		}
	}
	s.mu.Lock()
	s.spare = batch[:0]
	s.mu.Unlock()
}

func (s *Store) dir(fn string) string { return filepath.Join(s.cfg.Dir, url.PathEscape(fn)) }

// writer returns fn's open segment, opening one named for t if none is.
func (s *Store) writer(fn string, t time.Time) (*segWriter, error) {
	if w := s.writers[fn]; w != nil {
		return w, nil
	}
	dir := s.dir(fn)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	for n := t.UnixNano(); ; n++ {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%020d.ndjson", n)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if os.IsExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		w := &segWriter{f: f, w: bufio.NewWriterSize(f, 64<<10)}
		s.writers[fn] = w
		return w, nil
	}
}

func (s *Store) closeWriter(fn string) {
	w := s.writers[fn]
	if w == nil {
		return
	}
	delete(s.writers, fn)
	if err := w.w.Flush(); err != nil {
		s.cfg.Logger.Error("logs: writing", "fn", fn, "err", err)
	}
	w.f.Close()
}

type segment struct {
	path  string
	start int64 // unix nanos of its first line
	size  int64
	mod   time.Time
}

// segments lists fn's segments, oldest first.
func (s *Store) segments(fn string) []segment {
	ents, err := os.ReadDir(s.dir(fn))
	if err != nil {
		return nil
	}
	var out []segment
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".ndjson")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(name, 10, 64)
		if err != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, segment{path: filepath.Join(s.dir(fn), e.Name()), start: n, size: info.Size(), mod: info.ModTime()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start < out[j].start })
	return out
}

// trim deletes fn's oldest closed segments past MaxBytes. Called with wmu.
func (s *Store) trim(fn string) {
	segs := s.segments(fn)
	var total int64
	for _, g := range segs {
		total += g.size
	}
	open := ""
	if w := s.writers[fn]; w != nil {
		open = w.f.Name()
	}
	for _, g := range segs {
		if total <= s.cfg.MaxBytes {
			break
		}
		if g.path == open {
			continue
		}
		if os.Remove(g.path) == nil {
			total -= g.size
		}
	}
}

// Sweep deletes the segments last written more than MaxAge ago and
// trims every function to MaxBytes; the flusher runs it every minute.
func (s *Store) Sweep() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	ents, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return
	}
	cutoff := s.cfg.Now().Add(-s.cfg.MaxAge)
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		fn, err := url.PathUnescape(e.Name())
		if err != nil {
			continue
		}
		for _, g := range s.segments(fn) {
			if g.mod.Before(cutoff) {
				if w := s.writers[fn]; w != nil && w.f.Name() == g.path {
					s.closeWriter(fn)
				}
				os.Remove(g.path)
			}
		}
		s.trim(fn)
		os.Remove(s.dir(fn)) // only if empty
	}
}

// Query selects lines.
type Query struct {
	Function   string    // "" for every function
	Invocation string    // only this invocation's lines
	Since      time.Time // lines at or after this
	Until      time.Time // lines before this (zero: no bound)
	Grep       string    // lines containing this text
	N          int       // at most the N latest (0: 100)
}

// Match reports whether l is one of the lines q selects (N aside).
func (q *Query) Match(l *Line) bool {
	if q.Invocation != "" && l.Invocation != q.Invocation {
		return false
	}
	if !q.Since.IsZero() && l.Time.Before(q.Since) || !q.Until.IsZero() && !l.Time.Before(q.Until) {
		return false
	}
	if q.Grep != "" && !strings.Contains(l.Text, q.Grep) && (l.Stream != StreamReport || !strings.Contains(l.Report.Error, q.Grep) &&
		!strings.Contains(l.Report.ErrorType, q.Grep) && !strings.Contains(strings.Join(l.Report.StackTrace, "\n"), q.Grep)) {
		return false
	}
	return true
}

// Tail returns up to q.N of the latest lines that match q, oldest first,
// from every function when q.Function is empty.
func (s *Store) Tail(q Query) ([]Line, error) {
	if q.N <= 0 {
		q.N = 100
	}
	s.Flush()
	var fns []string
	if q.Function != "" {
		fns = []string{q.Function}
	} else {
		ents, err := os.ReadDir(s.cfg.Dir)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if fn, err := url.PathUnescape(e.Name()); err == nil && e.IsDir() {
				fns = append(fns, fn)
			}
		}
	}
	var out []Line
	for _, fn := range fns {
		ls, err := s.tailOne(fn, &q)
		if err != nil {
			return nil, err
		}
		out = append(out, ls...)
	}
	if len(fns) > 1 {
		sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	}
	if len(out) > q.N {
		out = out[len(out)-q.N:]
	}
	return out, nil
}

// tailOne reads fn's segments newest first until it has q.N lines or
// the segments are older than q.Since.
func (s *Store) tailOne(fn string, q *Query) ([]Line, error) {
	segs := s.segments(fn)
	var rev [][]Line // per segment, oldest first within
	have := 0
	for i := len(segs) - 1; i >= 0 && have < q.N; i-- {
		if !q.Until.IsZero() && segs[i].start >= q.Until.UnixNano() {
			continue
		}
		b, err := os.ReadFile(segs[i].path)
		if err != nil {
			if os.IsNotExist(err) {
				continue // deleted by retention meanwhile
			}
			return nil, err
		}
		var ls []Line
		for len(b) > 0 {
			line, rest, _ := bytes.Cut(b, []byte("\n"))
			b = rest
			var l Line
			if len(line) == 0 || json.Unmarshal(line, &l) != nil {
				continue // a line cut by a crash
			}
			if q.Match(&l) {
				ls = append(ls, l)
			}
		}
		rev = append(rev, ls)
		have += len(ls)
		if !q.Since.IsZero() && segs[i].start < q.Since.UnixNano() {
			break // every older segment ends before this one starts
		}
	}
	var out []Line
	for i := len(rev) - 1; i >= 0; i-- {
		out = append(out, rev[i]...)
	}
	if len(out) > q.N {
		out = out[len(out)-q.N:]
	}
	return out, nil
}

// Follow returns a channel of fn's new lines ("" for every function's)
// and a function that stops it.
func (s *Store) Follow(fn string) (<-chan Line, func()) {
	ch := make(chan Line, 256)
	s.mu.Lock()
	if s.subs[fn] == nil {
		s.subs[fn] = map[chan Line]struct{}{}
	}
	s.subs[fn][ch] = struct{}{}
	s.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.subs[fn], ch)
			s.mu.Unlock()
		})
	}
}

// Drop forgets fn's lines (the function was removed).
func (s *Store) Drop(fn string) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	kept := s.pending[:0]
	for _, l := range s.pending {
		if l.Function != fn {
			kept = append(kept, l)
		}
	}
	clear(s.pending[len(kept):])
	s.pending = kept
	s.mu.Unlock()
	s.closeWriter(fn)
	os.RemoveAll(s.dir(fn))
}

// Close writes what is pending and closes the files.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for fn := range s.writers {
		s.closeWriter(fn)
	}
	return nil
}
