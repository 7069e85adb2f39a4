package logs

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func open(t *testing.T, cfg Config) *Store {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	cfg.FlushEvery = time.Hour // tests flush by reading
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func texts(ls []Line) string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Text)
	}
	return strings.Join(out, " ")
}

func tail(t *testing.T, s *Store, q Query) string {
	t.Helper()
	ls, err := s.Tail(q)
	if err != nil {
		t.Fatal(err)
	}
	return texts(ls)
}

func TestTailFilters(t *testing.T) {
	s := open(t, Config{})
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for i := 1; i <= 5; i++ {
		s.Add(Line{Time: t0.Add(time.Duration(i) * time.Minute), Function: "f", Invocation: fmt.Sprint(i % 2), Text: fmt.Sprintf("f%d", i)})
		s.Add(Line{Time: t0.Add(time.Duration(i)*time.Minute + time.Second), Function: "g", Text: fmt.Sprintf("g%d", i)})
	}
	tests := []struct {
		q    Query
		want string
	}{
		{Query{Function: "f"}, "f1 f2 f3 f4 f5"},
		{Query{Function: "f", N: 2}, "f4 f5"},
		{Query{Function: "f", Invocation: "1"}, "f1 f3 f5"},
		{Query{Function: "f", Since: t0.Add(3 * time.Minute)}, "f3 f4 f5"},
		{Query{Function: "f", Until: t0.Add(3 * time.Minute)}, "f1 f2"},
		{Query{Function: "g", Grep: "4"}, "g4"},
		{Query{}, "f1 g1 f2 g2 f3 g3 f4 g4 f5 g5"},
		{Query{N: 3}, "g4 f5 g5"},
		{Query{Function: "nope"}, ""},
	}
	for _, tt := range tests {
		if got := tail(t, s, tt.q); got != tt.want {
			t.Errorf("Tail(%+v): got %q, want %q", tt.q, got, tt.want)
		}
	}
}

func TestSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	s.Add(Line{Function: "f", Text: "before"})
	s.Add(Line{Function: "f", Invocation: "i1", Stream: StreamReport, Report: Report{DurationUs: 1500, Error: "boom", StackTrace: []string{"a", "b"}}})
	s.Close()
	s2 := open(t, Config{Dir: dir})
	s2.Add(Line{Function: "f", Text: "after"})
	ls, err := s2.Tail(Query{Function: "f"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 3 || ls[0].Text != "before" || ls[1].Report.Error != "boom" || len(ls[1].Report.StackTrace) != 2 || ls[2].Text != "after" {
		t.Fatalf("after a restart: got %+v", ls)
	}
	if got := tail(t, s2, Query{Function: "f", Grep: "boom"}); got != "" {
		// The report matched (its text is empty).
		t.Fatalf("grep on a report's error: got texts %q", got)
	}
	if ls, _ := s2.Tail(Query{Function: "f", Grep: "boom"}); len(ls) != 1 {
		t.Fatalf("grep on a report's error: got %d lines, want 1", len(ls))
	}
}

func TestRetention(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	s := open(t, Config{SegmentSize: 1 << 10, MaxBytes: 4 << 10, Now: clock})
	for i := 0; i < 200; i++ {
		s.Add(Line{Function: "f", Text: fmt.Sprintf("%03d %s", i, strings.Repeat("x", 80))})
	}
	s.Flush()
	var total int64
	for _, g := range s.segments("f") {
		total += g.size
	}
	if total > 4<<10+1<<10 {
		t.Errorf("segments hold %d bytes, want at most MaxBytes plus one segment", total)
	}
	got := tail(t, s, Query{Function: "f", N: 1000})
	if !strings.HasPrefix(strings.Fields(got)[0], "1") || !strings.Contains(got, "199 ") {
		t.Errorf("after trimming: want the latest lines kept and the oldest gone, got from %q", got[:20])
	}
	now = now.Add(8 * 24 * time.Hour)
	s.Sweep()
	if got := tail(t, s, Query{Function: "f"}); got != "" {
		t.Errorf("after MaxAge: got %q, want nothing", got[:min(40, len(got))])
	}
	if _, err := os.Stat(filepath.Join(s.cfg.Dir, "f")); !os.IsNotExist(err) {
		t.Errorf("an emptied function's directory is kept: %v", err)
	}
}

func TestFollowAndLongLines(t *testing.T) {
	s := open(t, Config{})
	ch, stop := s.Follow("f")
	all, stopAll := s.Follow("")
	defer stopAll()
	s.Add(Line{Function: "g", Text: "other"})
	s.Add(Line{Function: "f", Text: strings.Repeat("x", MaxLine+10)})
	select {
	case l := <-ch:
		if len(l.Text) > MaxLine+len("…") || l.Time.IsZero() {
			t.Errorf("line not cut or not stamped: len %d", len(l.Text))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follower got nothing")
	}
	if l := <-all; l.Text != "other" {
		t.Errorf("following all: got %q first, want other", l.Text)
	}
	stop()
	stop()
	s.Add(Line{Function: "f", Text: "after stop"})
	select {
	case l := <-ch:
		t.Errorf("got %q after stop", l.Text)
	default:
	}
}

func TestDrop(t *testing.T) {
	s := open(t, Config{})
	s.Add(Line{Function: "f", Text: "flushed"})
	s.Flush()
	s.Add(Line{Function: "f", Text: "pending"})
	s.Add(Line{Function: "g", Text: "kept"})
	s.Drop("f")
	if got := tail(t, s, Query{}); got != "kept" {
		t.Fatalf("after Drop: got %q, want kept", got)
	}
}

// TestHammer adds, reads, drops and sweeps at once (run with -race).
func TestHammer(t *testing.T) {
	s := open(t, Config{SegmentSize: 4 << 10, MaxBytes: 16 << 10})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				s.Add(Line{Function: fmt.Sprint("f", i%3), Text: "line"})
				switch i % 500 {
				case 100:
					s.Tail(Query{N: 10})
				case 200:
					s.Drop("f2")
				case 300:
					s.Sweep()
				}
			}
		}()
	}
	wg.Wait()
	if ls, err := s.Tail(Query{Function: "f0", N: 5}); err != nil || len(ls) != 5 {
		t.Fatalf("after the hammer: %d lines, %v", len(ls), err)
	}
}

// FuzzAppendLine: the hand-written encoder reads back as what
// encoding/json writes reads back, for any text, plain line or report.
func FuzzAppendLine(f *testing.F) {
	f.Add("f", "inv", "hello \"world\"\n\t\x01 \xff \u2028 ✓", false, int64(0))
	f.Add("f", "inv", "Traceback:\n  boom", true, int64(1500))
	f.Fuzz(func(t *testing.T, fn, inv, text string, report bool, n int64) {
		l := Line{Time: time.Date(2026, 12, 7, 1, 2, 3, 4, time.UTC), Function: fn, Invocation: inv, Stream: "log", Text: text}
		if report {
			l.Stream = StreamReport
			l.Report = Report{Start: l.Time.Add(-time.Duration(n)), Version: text, Attempt: int(n % 5), DurationUs: n, BilledMs: n / 1000,
				CPUUs: -n, MemoryMB: 128, MaxMemMB: n % 3, InitUs: n % 7, ErrorCode: inv, Error: text, ErrorType: fn}
			if n%2 == 0 {
				l.Report.StackTrace = []string{text, fn}
			}
		}
		var got, want Line
		if err := json.Unmarshal(appendLine(nil, &l), &got); err != nil {
			t.Fatalf("%q: %v", appendLine(nil, &l), err)
		}
		b, _ := json.Marshal(l)
		json.Unmarshal(b, &want)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	})
}
