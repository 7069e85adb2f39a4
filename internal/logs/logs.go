// Package logs keeps the recent log lines of every function in memory and
// lets clients follow them live: `mote logs NAME [-f]`.
//
// Each function has a ring of its last lines (Config.PerFunction); a line
// carries the invocation it came from, so logs can be read per invocation.
// Logs are not durable: they are for watching and debugging, not audit.
package logs

import (
	"sync"
	"time"
)

// Line is one log line of a function.
type Line struct {
	Time       time.Time `json:"time"`
	Function   string    `json:"function"`
	Invocation string    `json:"invocation,omitempty"`
	Stream     string    `json:"stream,omitempty"` // "log", "stdout", "stderr", "platform"
	Text       string    `json:"text"`
}

// MaxLine is the longest line kept; longer ones are cut.
const MaxLine = 16 << 10

// Store keeps lines per function.
type Store struct {
	per int

	mu   sync.Mutex
	fns  map[string]*ring
	subs map[string]map[chan Line]struct{}
}

type ring struct {
	lines []Line
	next  int
	full  bool
}

// New returns a store keeping perFunction lines per function (default 1000).
func New(perFunction int) *Store {
	if perFunction <= 0 {
		perFunction = 1000
	}
	return &Store{per: perFunction, fns: map[string]*ring{}, subs: map[string]map[chan Line]struct{}{}}
}

// Add appends a line and hands it to followers. A follower that is not
// keeping up loses lines rather than slowing the function down.
func (s *Store) Add(l Line) {
	if len(l.Text) > MaxLine {
		l.Text = l.Text[:MaxLine] + "…"
	}
	if l.Time.IsZero() {
		l.Time = time.Now().UTC()
	}
	s.mu.Lock()
	r := s.fns[l.Function]
	if r == nil {
		r = &ring{lines: make([]Line, s.per)}
		s.fns[l.Function] = r
	}
	r.lines[r.next] = l
	r.next = (r.next + 1) % len(r.lines)
	if r.next == 0 {
		r.full = true
	}
	for ch := range s.subs[l.Function] {
		select {
		case ch <- l:
		default:
		}
	}
	s.mu.Unlock()
}

// Tail returns up to n of fn's latest lines, oldest first; with invocation
// set, only that invocation's lines.
func (s *Store) Tail(fn, invocation string, n int) []Line {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.fns[fn]
	if r == nil {
		return nil
	}
	var all []Line
	if r.full {
		all = append(all, r.lines[r.next:]...)
	}
	all = append(all, r.lines[:r.next]...)
	var out []Line
	for _, l := range all {
		if invocation == "" || l.Invocation == invocation {
			out = append(out, l)
		}
	}
	if n > 0 && len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

// Follow returns a channel of fn's new lines and a function that stops it.
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
	s.mu.Lock()
	delete(s.fns, fn)
	s.mu.Unlock()
}
