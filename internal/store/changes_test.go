package store

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/clock"
)

func openChanges(t *testing.T, dir string, clk clock.Clock) (*DB, *ChangeLog, *KV, *Objects) {
	t.Helper()
	clk = clock.Or(clk)
	db := openTestDB(t, dir+"/db")
	cl, err := OpenChangeLog(db, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := OpenKV(db, KVConfig{Changes: cl, Clock: clk, SweepInterval: manualSweep})
	if err != nil {
		t.Fatal(err)
	}
	obj, err := OpenObjects(db, ObjectsConfig{Dir: dir + "/objects", Changes: cl})
	if err != nil {
		t.Fatal(err)
	}
	return db, cl, kv, obj
}

func readAll(t *testing.T, cl *ChangeLog, after uint64) ([]string, uint64) {
	t.Helper()
	var out []string
	for {
		chs, upTo, _, err := cl.Read(after, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range chs {
			s := fmt.Sprintf("%s:%s/%s:%s", c.Space, c.Bucket, c.Key, c.Op)
			if c.Expired {
				s += "(expired)"
			}
			out = append(out, s)
		}
		if len(chs) == 0 {
			return out, upTo
		}
		after = upTo
	}
}

func TestChangeLogRecordsWatchedWrites(t *testing.T) {
	clock := newFakeClock()
	dir := t.TempDir()
	db, cl, kv, obj := openChanges(t, dir, clock)
	if err := cl.Watch("kv", "w"); err != nil {
		t.Fatal(err)
	}
	if err := cl.Watch("obj", "w"); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := kv.Put("w", "a", []byte("1"), WriteOptions{})
	must(err)
	_, err = kv.Put("other", "a", []byte("1"), WriteOptions{}) // not watched
	must(err)
	_, err = kv.Put("w", "b", []byte("1"), WriteOptions{Durability: Buffered})
	must(err)
	must(kv.flushBuffered())
	_, err = kv.Batch([]BatchOp{{Bucket: "w", Key: "c", Value: []byte("x")}, {Bucket: "other", Key: "c", Value: []byte("x")}, {Bucket: "w", Key: "a", Delete: true}}, WriteOptions{})
	must(err)
	_, err = kv.Put("w", "t", []byte("1"), WriteOptions{TTL: time.Second})
	must(err)
	clock.Advance(2 * time.Second)
	_, err = kv.Sweep()
	must(err)
	_, err = obj.Put("w", "o", strings.NewReader("data"), "text/plain")
	must(err)
	must(obj.Delete("w", "o"))
	_, _, err = kv.Increment("w", "n", 1, WriteOptions{})
	must(err)
	must(kv.Delete("w", "b", WriteOptions{}))

	want := []string{"kv:w/a:put", "kv:w/b:put", "kv:w/c:put", "kv:w/a:delete", "kv:w/t:put", "kv:w/t:delete(expired)",
		"obj:w/o:put", "obj:w/o:delete", "kv:w/n:put", "kv:w/b:delete"}
	got, upTo := readAll(t, cl, 0)
	if !slices.Equal(got, want) {
		t.Fatalf("changes:\n got %v\nwant %v", got, want)
	}

	// Across a restart: the log is kept, numbers go on above it, and the
	// watch is still there before any subscriber comes back.
	kv.Close()
	obj.Close()
	db.Close()
	db, cl, kv, _ = openChanges(t, dir, clock)
	defer db.Close()
	defer kv.Close()
	if got, _ := readAll(t, cl, 0); !slices.Equal(got, want) {
		t.Fatalf("after reopen: %v", got)
	}
	_, err = kv.Put("w", "z", []byte("1"), WriteOptions{})
	must(err)
	if got, _ := readAll(t, cl, upTo); !slices.Equal(got, []string{"kv:w/z:put"}) {
		t.Fatalf("after reopen, new: %v", got)
	}
	must(cl.Trim(upTo))
	if got, _ := readAll(t, cl, 0); !slices.Equal(got, []string{"kv:w/z:put"}) {
		t.Fatalf("after trim: %v", got)
	}
	must(cl.Unwatch("kv", "w"))
	_, err = kv.Put("w", "y", []byte("1"), WriteOptions{})
	must(err)
	if got, _ := readAll(t, cl, 0); len(got) != 1 {
		t.Fatalf("unwatched bucket logged: %v", got)
	}
}

// TestChangeLogOrderPerKey hammers a few keys from many writers and
// checks that each key's entries come in version order and that a reader
// following the log as it grows sees every entry once.
func TestChangeLogOrderPerKey(t *testing.T) {
	_, cl, kv, _ := openChanges(t, t.TempDir(), nil)
	if err := cl.Watch("kv", "w"); err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 200
	var seen []Change
	done, stop := make(chan struct{}), make(chan struct{})
	go func() { // a reader following the log, as a subscription does
		defer close(done)
		var after uint64
		for {
			chs, upTo, ready, err := cl.Read(after, 50)
			if err != nil {
				t.Error(err)
				return
			}
			seen = append(seen, chs...)
			after = upTo
			if len(chs) > 0 {
				continue
			}
			select {
			case <-ready:
			case <-stop: // the writers are done and the log was read to its end
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				d := Durable
				if i%2 == 0 {
					d = Buffered
				}
				// Unique values: a buffered put is never coalesced with another.
				if _, err := kv.Put("w", fmt.Sprintf("k%d", (w+i)%3), fmt.Appendf(nil, "%d-%d", w, i), WriteOptions{Durability: d}); err != nil {
					t.Error(err)
					return
				}
				if d == Buffered {
					kv.flushBuffered()
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-done
	// Buffered puts to one key in one flush may be coalesced; durable
	// ones never are.
	if len(seen) < writers*each/2 {
		t.Fatalf("%d entries for %d writes", len(seen), writers*each)
	}
	last := map[string]uint64{}
	var prevSeq uint64
	for _, c := range seen {
		if c.Seq <= prevSeq {
			t.Fatalf("seq %d after %d", c.Seq, prevSeq)
		}
		prevSeq = c.Seq
		if c.Version <= last[c.Key] {
			t.Fatalf("key %s: version %d after %d", c.Key, c.Version, last[c.Key])
		}
		last[c.Key] = c.Version
	}
}
