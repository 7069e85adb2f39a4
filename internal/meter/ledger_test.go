package meter

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/store"
)

func openDB(t testing.TB, dir string) *store.DB {
	t.Helper()
	db, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func newLedger(t testing.TB, db *store.DB) *Ledger {
	t.Helper()
	l, err := NewLedger(db, LedgerConfig{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLedgerAggregatesPerFunctionPerHour(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	l := newLedger(t, db)
	defer l.Close()

	h0 := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	recs := []Record{
		{Function: "a", At: h0.Add(time.Minute), CPU: 1500 * time.Microsecond, Wall: 200 * time.Millisecond, Memory: 256 << 20},
		{Function: "a", At: h0.Add(59 * time.Minute), CPU: 100 * time.Microsecond, Wall: 10*time.Millisecond + 1, Memory: 256 << 20, Failed: true},
		{Function: "a", At: h0.Add(61 * time.Minute), CPU: 3 * time.Millisecond, Wall: 3 * time.Millisecond},
		{Function: "b", At: h0.Add(5 * time.Minute), CPU: 0, Wall: time.Millisecond},
	}
	for _, r := range recs {
		l.Record(r)
	}
	got, err := l.Query("a", h0, h0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d rows, want 2: %+v", len(got), got)
	}
	first := got[0]
	if !first.Hour.Equal(h0) || first.Invocations != 2 || first.Errors != 1 || first.CPUMicros != 1600 || first.BilledMs != 3 || first.WallMs != 211 {
		t.Errorf("hour 10: got %+v", first)
	}
	// 211 ms × 256 MiB = 54016 MiB·ms; in GB-s: 54016/1024/1000.
	if want := 54016.0 / 1024 / 1000; first.LambdaGBs != want {
		t.Errorf("LambdaGBs = %v, want %v", first.LambdaGBs, want)
	}
	if want := 3 * 256.0 / 1024 / 1000; first.BilledGBs != want {
		t.Errorf("BilledGBs = %v, want %v", first.BilledGBs, want)
	}
	second := got[1]
	// The default memory (128 MiB) applies when a record has none.
	if second.BilledMs != 3 || second.LambdaGBs != 3*128.0/1024/1000 {
		t.Errorf("hour 11: got %+v", second)
	}

	all, err := l.Query("", h0, h0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].Function != "a" || all[1].Function != "b" {
		t.Fatalf("all functions, hour 10: got %+v", all)
	}
	if total := Sum(all); total.Invocations != 3 || total.BilledMs != 4 {
		t.Errorf("Sum = %+v, want 3 invocations, 4 billed ms (a 0-CPU run bills the 1 ms minimum)", total)
	}
}

func TestLedgerSurvivesReopenAndAccumulates(t *testing.T) {
	dir := t.TempDir()
	h := time.Date(2026, 1, 1, 0, 30, 0, 0, time.UTC)
	for i := 0; i < 2; i++ {
		db := openDB(t, dir)
		l := newLedger(t, db)
		l.Record(Record{Function: "f", At: h, CPU: 2 * time.Millisecond, Wall: 5 * time.Millisecond})
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	db := openDB(t, dir)
	defer db.Close()
	l := newLedger(t, db)
	defer l.Close()
	got, err := l.Query("f", h.Add(-time.Hour), h.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Invocations != 2 || got[0].BilledMs != 4 {
		t.Fatalf("got %+v, want one row with 2 invocations and 4 billed ms", got)
	}
}

func TestLedgerQueryRejectsEmptyRange(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	l := newLedger(t, db)
	defer l.Close()
	now := time.Now()
	_, err := l.Query("", now, now)
	if got, want := errs.CodeOf(err), errs.BadRequest; got != want {
		t.Errorf("code = %q, want %q", got, want)
	}
}

func TestLedgerFunctionNamesDoNotOverlap(t *testing.T) {
	// "ab" must not show up in a query for "a".
	db := openDB(t, t.TempDir())
	defer db.Close()
	l := newLedger(t, db)
	defer l.Close()
	at := time.Date(2026, 5, 5, 5, 5, 0, 0, time.UTC)
	l.Record(Record{Function: "a", At: at, CPU: time.Millisecond})
	l.Record(Record{Function: "ab", At: at, CPU: time.Millisecond})
	got, err := l.Query("a", at.Add(-time.Hour), at.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Function != "a" {
		t.Fatalf("got %+v, want only function a", got)
	}
}

func TestLedgerConcurrentRecords(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	l := newLedger(t, db)
	defer l.Close()
	at := time.Date(2026, 5, 5, 5, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				l.Record(Record{Function: fmt.Sprint("f", i%3), At: at, CPU: time.Microsecond})
				if i%100 == 0 {
					if err := l.Flush(); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	got, err := l.Query("", at, at.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if total := Sum(got); total.Invocations != 4000 || total.BilledMs != 4000 {
		t.Fatalf("total = %+v, want 4000 invocations and 4000 billed ms", total)
	}
}

func BenchmarkLedgerRecord(b *testing.B) {
	db := openDB(b, b.TempDir())
	defer db.Close()
	l := newLedger(b, db)
	defer l.Close()
	at := time.Now()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		l.Record(Record{Function: "f", At: at, CPU: time.Millisecond, Wall: time.Millisecond})
	}
}

// Records that alternate between functions and hours, around flushes (which
// swap the pending rows Record caches the last of), all count once.
func TestLedgerInterleavedRecordsAcrossFlushes(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	l := newLedger(t, db)
	defer l.Close()

	h0 := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	seq := []struct {
		fn string
		at time.Duration
	}{{"a", 0}, {"a", time.Minute}, {"b", 2 * time.Minute}, {"a", 3 * time.Minute}, {"a", 61 * time.Minute}, {"a", 4 * time.Minute}}
	for round := range 3 {
		for _, s := range seq {
			l.Record(Record{Function: s.fn, At: h0.Add(s.at), CPU: time.Millisecond})
		}
		if round == 1 {
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	rows, err := l.Query("", h0, h0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"a@10": 12, "b@10": 3, "a@11": 3}
	for _, r := range rows {
		k := r.Function + "@" + strconv.Itoa(r.Hour.Hour())
		if r.Invocations != want[k] || r.BilledMs != want[k] {
			t.Errorf("%s: %d invocations, %d billed ms; want %d of each", k, r.Invocations, r.BilledMs, want[k])
		}
		delete(want, k)
	}
	if len(want) != 0 {
		t.Errorf("rows missing: %v", want)
	}
	if got, want := usageHour(h0.Add(59*time.Minute+59*time.Second)), h0.Unix(); got != want {
		t.Errorf("hour of 10:59:59 = %d, want %d", got, want)
	}
}

// TestSumAfterJSON: rows that crossed the wire (mote usage sums them per
// function) keep their GB-s. Failed before the exact sums were in JSON:
// the sum's GB-s was 0.
func TestSumAfterJSON(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	l := newLedger(t, db)
	defer l.Close()
	h0 := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	l.Record(Record{Function: "a", At: h0, CPU: 2 * time.Millisecond, Wall: 100 * time.Millisecond, Memory: 256 << 20})
	l.Record(Record{Function: "a", At: h0.Add(time.Hour), CPU: 2 * time.Millisecond, Wall: 100 * time.Millisecond, Memory: 256 << 20})
	rows, err := l.Query("a", h0, h0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(rows)
	if err != nil {
		t.Fatal(err)
	}
	var back []Usage
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	got, want := Sum(back), Sum(rows)
	if got.LambdaGBs != want.LambdaGBs || got.BilledGBs != want.BilledGBs || want.BilledGBs == 0 {
		t.Errorf("after JSON: GB-s %v/%v, want %v/%v (nonzero)", got.BilledGBs, got.LambdaGBs, want.BilledGBs, want.LambdaGBs)
	}
}
