package store

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// flakyEngine is the Pebble engine with a fault seam: the next n applies
// fail without reaching Pebble, as a backend's transient failure would
// (Pebble's own failures are sticky; see TestWALFaultFailsDurableWrites).
type flakyEngine struct {
	Engine
	fail atomic.Int32
}

var errFlaky = errors.New("flaky engine: injected")

func (e *flakyEngine) Apply(b *Batch, sync bool) error {
	if e.fail.Add(-1) >= 0 {
		return errFlaky
	}
	return e.Engine.Apply(b, sync)
}

func openFlaky(t *testing.T) (*DB, *flakyEngine) {
	t.Helper()
	pe, err := openPebble(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	fe := &flakyEngine{Engine: pe}
	db := NewDB(fe, DBConfig{})
	t.Cleanup(func() { db.Close() })
	return db, fe
}

// listSource is a Source of key=value records added by tests.
type listSource struct {
	mu       sync.Mutex
	pending  [][2]string
	inflight [][2]string
	durable  bool
	outcomes []error
}

func (s *listSource) add(k, v string) {
	s.mu.Lock()
	s.pending = append(s.pending, [2]string{k, v})
	s.mu.Unlock()
}

func (s *listSource) Collect(b *Batch) bool {
	s.mu.Lock()
	s.inflight = append(s.inflight, s.pending...)
	s.pending = nil
	s.mu.Unlock()
	for _, r := range s.inflight {
		b.Set([]byte(r[0]), []byte(r[1]))
	}
	return s.durable
}

func (s *listSource) Committed(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outcomes = append(s.outcomes, err)
	if err == nil {
		s.inflight = nil
	}
}

// TestCommitterKeepsRecordsOfAFailedCycle checks that a source hears
// each cycle's failure, that Flush returns it, and that the records of
// failed cycles commit, in order, once the engine accepts them again.
func TestCommitterKeepsRecordsOfAFailedCycle(t *testing.T) {
	db, fe := openFlaky(t)
	src := &listSource{}
	feed := db.Register(src, SourceConfig{Name: "test"})
	src.add("t/a", "1")
	fe.fail.Store(2)
	if err := feed.Flush(); !errors.Is(err, errFlaky) {
		t.Fatalf("first Flush = %v, want the injected error", err)
	}
	src.add("t/a", "2") // a later record of the same key lands after
	src.add("t/b", "1")
	if err := feed.Flush(); !errors.Is(err, errFlaky) {
		t.Fatalf("second Flush = %v, want the injected error", err)
	}
	if err := feed.Flush(); err != nil {
		t.Fatalf("third Flush = %v, want nil", err)
	}
	for k, want := range map[string]string{"t/a": "2", "t/b": "1"} {
		if v, err := db.Get([]byte(k)); err != nil || string(v) != want {
			t.Errorf("%s = %q, %v; want %q", k, v, err, want)
		}
	}
	src.mu.Lock()
	n := len(src.outcomes)
	src.mu.Unlock()
	if n < 3 {
		t.Errorf("source heard %d outcomes, want at least 3", n)
	}
	if err := feed.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestKVBufferSurvivesFailedCycles checks that buffered puts stay
// readable while their cycle fails, that a flush and a direct write of
// the same key return the failure rather than acknowledge over it, and
// that the buffered records commit once the engine recovers.
func TestKVBufferSurvivesFailedCycles(t *testing.T) {
	db, fe := openFlaky(t)
	kv, err := OpenKV(db, KVConfig{Durability: Buffered})
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	if _, err := kv.Put("b", "k", []byte("buffered"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	fe.fail.Store(1 << 20)
	if err := kv.flushBuffered(); !errors.Is(err, errFlaky) {
		t.Fatalf("flush while failing = %v, want the injected error", err)
	}
	if e, err := kv.Get("b", "k"); err != nil || string(e.Value) != "buffered" {
		t.Errorf("Get while failing = %q, %v; want the buffered value", e.Value, err)
	}
	if _, err := kv.Put("b", "k", []byte("direct"), WriteOptions{Durability: Durable}); err == nil {
		t.Error("durable put over a buffered record whose cycle fails: acknowledged, want an error")
	}
	fe.fail.Store(0)
	if err := kv.flushBuffered(); err != nil {
		t.Fatalf("flush after recovery = %v", err)
	}
	raw, err := db.Get(appendKVKey(nil, "b", "k"))
	if err != nil {
		t.Fatalf("record not committed after recovery: %v", err)
	}
	if _, _, v, _ := decodeRecord(raw); string(v) != "buffered" {
		t.Errorf("committed %q, want \"buffered\"", v)
	}
}
