package store

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/errs"
)

// holdBuffer is a config whose flusher never runs on its own (only when a
// waiter or a full buffer asks), so buffered puts stay in memory and the
// tests see the read paths serve them from the write buffer.
func holdBuffer(cfg KVConfig) KVConfig {
	cfg.FlushInterval = time.Hour
	cfg.Durability = Buffered
	return cfg
}

var buffered = WriteOptions{Durability: Buffered}

// inPebble reads bucket/key's record from Pebble itself, bypassing the
// write buffer and the cache.
func inPebble(t *testing.T, db *DB, bucket, key string) (string, uint64, bool) {
	t.Helper()
	raw, err := db.Get(appendKVKey(nil, bucket, key))
	if errors.Is(err, ErrNotFound) {
		return "", 0, false
	}
	if err != nil {
		t.Fatalf("pebble get %s/%s: %v", bucket, key, err)
	}
	ver, _, val, ok := decodeRecord(raw)
	if !ok {
		t.Fatalf("corrupt record at %s/%s", bucket, key)
	}
	return string(val), ver, true
}

func TestKVBufferedReadYourWrites(t *testing.T) {
	for _, cacheBytes := range []int64{0, -1} {
		t.Run(fmt.Sprintf("cache=%d", cacheBytes), func(t *testing.T) {
			clk := newFakeClock()
			kv, db := newTestKV(t, holdBuffer(KVConfig{CacheBytes: cacheBytes, Clock: clk, SweepInterval: manualSweep}))
			v1, err := kv.Put("b", "k", []byte("one"), buffered)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, ok := inPebble(t, db, "b", "k"); ok {
				t.Fatal("buffered put is in Pebble already; the test needs it buffered")
			}
			e, err := kv.Get("b", "k")
			if err != nil || string(e.Value) != "one" || e.Version != v1 {
				t.Fatalf("Get = %q@%d, %v; want one@%d", e.Value, e.Version, err, v1)
			}
			e.Value[0] = 'X' // the caller's copy, not the buffer's
			if e, _ := kv.Get("b", "k"); string(e.Value) != "one" {
				t.Errorf("Get after caller changed its copy = %q, want one", e.Value)
			}

			// CAS against the buffered version: stale fails, current works.
			if _, err := kv.CAS("b", "k", v1-1, []byte("stale"), buffered); !errors.Is(err, ErrVersionMismatch) {
				t.Errorf("CAS at a stale version: %v, want ErrVersionMismatch", err)
			}
			if _, err := kv.CAS("b", "k", 0, []byte("create"), buffered); !errors.Is(err, ErrVersionMismatch) {
				t.Errorf("create-only CAS on a buffered key: %v, want ErrVersionMismatch", err)
			}
			v2, err := kv.CAS("b", "k", v1, []byte("two"), buffered)
			if err != nil || v2 <= v1 {
				t.Fatalf("CAS at the buffered version = %d, %v; want a version above %d", v2, err, v1)
			}

			// Increment reads the buffered value.
			kv.Put("b", "n", []byte("40"), buffered)
			if n, _, err := kv.Increment("b", "n", 2, buffered); err != nil || n != 42 {
				t.Errorf("Increment of buffered 40 = %d, %v; want 42", n, err)
			}

			// TTL: a buffered key expires like a committed one.
			kv.Put("b", "ttl", []byte("x"), WriteOptions{TTL: time.Minute, Durability: Buffered})
			if _, err := kv.Get("b", "ttl"); err != nil {
				t.Errorf("buffered key before its TTL: %v", err)
			}
			clk.Advance(2 * time.Minute)
			if _, err := kv.Get("b", "ttl"); errs.CodeOf(err) != errs.NotFound {
				t.Errorf("buffered key after its TTL: %v, want not_found", err)
			}

			// Delete of a buffered key, and a batch over buffered keys.
			kv.Put("b", "gone", []byte("x"), buffered)
			if err := kv.Delete("b", "gone", buffered); err != nil {
				t.Fatal(err)
			}
			if _, err := kv.Get("b", "gone"); errs.CodeOf(err) != errs.NotFound {
				t.Errorf("Get after deleting a buffered key: %v, want not_found", err)
			}
			kv.Put("b", "batched", []byte("old"), buffered)
			vers, err := kv.Batch([]BatchOp{{Bucket: "b", Key: "batched", Value: []byte("new")}}, buffered)
			if err != nil {
				t.Fatal(err)
			}
			if e, _ := kv.Get("b", "batched"); string(e.Value) != "new" || e.Version != vers[0] {
				t.Errorf("after batch = %q@%d, want new@%d", e.Value, e.Version, vers[0])
			}

			// List sees buffered keys, with paging.
			var want []string
			for i := range 25 {
				k := fmt.Sprintf("p/%02d", i)
				want = append(want, k)
				kv.Put("b", k, []byte("v"), buffered)
			}
			var got []string
			for cursor := ""; ; {
				page, err := kv.List("b", "p/", cursor, 10)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, page.Keys...)
				if cursor = page.Next; cursor == "" {
					break
				}
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("List = %v, want %v", got, want)
			}

			// Everything is in Pebble after Close, and a deleted or
			// superseded buffered record did not come back.
			if err := kv.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			for _, c := range []struct {
				key, want string
				ok        bool
			}{{"k", "two", true}, {"n", "42", true}, {"gone", "", false}, {"batched", "new", true}, {"p/24", "v", true}} {
				v, _, ok := inPebble(t, db, "b", c.key)
				if ok != c.ok || v != c.want {
					t.Errorf("after Close %s = %q (present %v), want %q (present %v)", c.key, v, ok, c.want, c.ok)
				}
			}
			if _, err := kv.Put("b", "k", []byte("late"), buffered); errs.CodeOf(err) != errs.Unavailable {
				t.Errorf("Put after Close: %v, want unavailable", err)
			}
		})
	}
}

// TestKVBufferedCacheCoherent checks the read cache against every kind of
// write that follows a buffered put, and the reverse.
func TestKVBufferedCacheCoherent(t *testing.T) {
	kv, _ := newTestKV(t, holdBuffer(KVConfig{}))
	steps := []struct {
		name  string
		write func() error
		want  string // "" means not found
	}{
		{"buffered put", func() error { _, err := kv.Put("b", "k", []byte("b1"), buffered); return err }, "b1"},
		{"buffered overwrite", func() error { _, err := kv.Put("b", "k", []byte("b2"), buffered); return err }, "b2"},
		{"durable put", func() error {
			_, err := kv.Put("b", "k", []byte("d1"), WriteOptions{Durability: Durable})
			return err
		}, "d1"},
		{"buffered after durable", func() error { _, err := kv.Put("b", "k", []byte("b3"), buffered); return err }, "b3"},
		{"durable delete", func() error { return kv.Delete("b", "k", WriteOptions{Durability: Durable}) }, ""},
		{"buffered after delete", func() error { _, err := kv.Put("b", "k", []byte("b4"), buffered); return err }, "b4"},
		{"durable increment", func() error {
			_, err := kv.Put("b", "k", []byte("7"), buffered)
			if err == nil {
				_, _, err = kv.Increment("b", "k", 1, WriteOptions{Durability: Durable})
			}
			return err
		}, "8"},
		{"buffered increment", func() error { _, _, err := kv.Increment("b", "k", 1, buffered); return err }, "9"},
		{"batch delete", func() error {
			_, err := kv.Batch([]BatchOp{{Bucket: "b", Key: "k", Delete: true}}, WriteOptions{Durability: Durable})
			return err
		}, ""},
		{"flush", func() error { return kv.flushBuffered() }, ""},
		{"buffered put again", func() error { _, err := kv.Put("b", "k", []byte("b5"), buffered); return err }, "b5"},
		{"flush keeps it", func() error { return kv.flushBuffered() }, "b5"},
	}
	for _, st := range steps {
		if _, err := kv.Get("b", "k"); err != nil && errs.CodeOf(err) != errs.NotFound { // fill the cache
			t.Fatal(err)
		}
		if err := st.write(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		e, err := kv.Get("b", "k")
		got := string(e.Value)
		if errs.CodeOf(err) == errs.NotFound {
			got = ""
		} else if err != nil {
			t.Fatalf("%s: Get: %v", st.name, err)
		}
		if got != st.want {
			t.Errorf("after %s: Get = %q, want %q", st.name, got, st.want)
		}
	}
}

// TestKVBufferedVersionsIncrease checks that versions only grow per key
// across buffered and durable writes, flushes and a reopen.
func TestKVBufferedVersionsIncrease(t *testing.T) {
	dir := t.TempDir()
	kv, db := openKVAt(t, dir, KVConfig{FlushInterval: 50 * time.Microsecond})
	var last uint64
	for i := range 3000 {
		d := Buffered
		if i%500 == 0 {
			d = Durable
		}
		v, err := kv.Put("b", "k", []byte(strconv.Itoa(i)), WriteOptions{Durability: d})
		if err != nil {
			t.Fatal(err)
		}
		if v <= last {
			t.Fatalf("put %d: version %d not above %d", i, v, last)
		}
		last = v
	}
	kv.Close()
	db.Close()
	kv, db = openKVAt(t, dir, KVConfig{})
	defer db.Close()
	defer kv.Close()
	e, err := kv.Get("b", "k")
	if err != nil || string(e.Value) != "2999" || e.Version != last {
		t.Fatalf("after reopen = %q@%d, %v; want 2999@%d", e.Value, e.Version, err, last)
	}
	if v, _ := kv.Put("b", "k", []byte("x"), buffered); v <= last {
		t.Errorf("version after reopen %d not above %d", v, last)
	}
}

// TestKVBufferedBackPressure storms puts at a small buffer whose flusher
// only runs when asked: the puts must wait for flushes rather than grow
// the buffer, and every put must land.
func TestKVBufferedBackPressure(t *testing.T) {
	const limit = 64 << 10
	kv, db := newTestKV(t, holdBuffer(KVConfig{MaxBufferedBytes: limit}))
	const writers, each = 4, 2000
	val := make([]byte, 100)
	entry := int64(len("kv/b/w0/00000")+recordHeader+len(val)) + pendingOverhead
	var peak atomic.Int64
	stop := make(chan struct{})
	var mon sync.WaitGroup
	mon.Add(1)
	go func() {
		defer mon.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if n := kv.buf.pending.Load(); n > peak.Load() {
				peak.Store(n)
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := kv.Put("b", fmt.Sprintf("w%d/%05d", w, i), val, buffered); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	mon.Wait()
	if got, max := peak.Load(), limit+writers*entry; got > max {
		t.Errorf("buffer peaked at %d bytes, want ≤ %d (limit + one put per writer)", got, max)
	}
	if err := kv.flushBuffered(); err != nil {
		t.Fatal(err)
	}
	n := 0
	db.Scan([]byte(PrefixKV+"b/"), func(_, _ []byte) bool { n++; return true })
	if n != writers*each {
		t.Errorf("Pebble holds %d keys after the storm, want %d", n, writers*each)
	}
}

// TestKVBufferedMixedHammer runs writers that alternate buffered and
// durable puts (and deletes) on shared keys against a fast flusher, with
// readers checking read-your-writes; then every key's final value must be
// what was last acknowledged, also after a reopen.
func TestKVBufferedMixedHammer(t *testing.T) {
	dir := t.TempDir()
	kv, db := openKVAt(t, dir, KVConfig{FlushInterval: 20 * time.Microsecond})
	const writers, keys, each = 4, 8, 300
	final := make([]string, writers*keys)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				slot := w*keys + i%keys
				key := fmt.Sprintf("k%02d", slot)
				val := fmt.Sprintf("%d", i)
				var err error
				switch i % 7 {
				case 3:
					_, err = kv.Put("b", key, []byte(val), WriteOptions{Durability: Durable})
				case 5:
					_, err = kv.Batch([]BatchOp{{Bucket: "b", Key: key, Value: []byte(val)}, {Bucket: "b", Key: fmt.Sprintf("k%02d", (slot+1)%(writers*keys)) + "x", Value: []byte("o")}}, buffered)
				case 6:
					err = kv.Delete("b", key, buffered)
					val = ""
				default:
					_, err = kv.Put("b", key, []byte(val), buffered)
				}
				if err != nil {
					t.Error(err)
					return
				}
				e, err := kv.Get("b", key)
				got := string(e.Value)
				if errs.CodeOf(err) == errs.NotFound {
					got = ""
				}
				if got != val {
					t.Errorf("writer %d read %s = %q right after writing %q", w, key, got, val)
					return
				}
				final[slot] = val
			}
		}()
	}
	wg.Add(1)
	go func() { // a lister racing the flusher
		defer wg.Done()
		for range 50 {
			if _, err := kv.List("b", "", "", 1000); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	if err := kv.Close(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openTestDB(t, dir)
	defer db.Close()
	for slot, want := range final {
		got, _, ok := inPebble(t, db, "b", fmt.Sprintf("k%02d", slot))
		if !ok {
			got = ""
		}
		if got != want {
			t.Errorf("after reopen k%02d = %q, want %q", slot, got, want)
		}
	}
}

const bufferedCrashChildEnv = "MOTE_STORE_BUFFERED_CRASH_CHILD"

// TestKVBufferedCrashChild is the child process of TestKVBufferedCrash;
// run on its own it skips. Two writers put buffered keys in sequence and
// print each once acknowledged ("w<n> <i>"); a third alternates a buffered
// and a durable put of the same key and prints after the durable one
// ("m <key> <i>"). It runs until killed.
func TestKVBufferedCrashChild(t *testing.T) {
	dir := os.Getenv(bufferedCrashChildEnv)
	if dir == "" {
		t.Skip("child of TestKVBufferedCrash")
	}
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := OpenKV(db, KVConfig{Durability: Buffered})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
		mu.Unlock()
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	for w := range 2 {
		go func() {
			for i := 0; ; i++ {
				if _, err := kv.Put("buf", fmt.Sprintf("w%d/%08d", w, i), []byte(strconv.Itoa(i)), WriteOptions{}); err != nil {
					fail(err)
				}
				say("w%d %d", w, i)
				if i%50 == 49 {
					time.Sleep(time.Millisecond) // bursts: enough keys, a WAL quick to replay
				}
			}
		}()
	}
	for i := 0; ; i++ {
		key := fmt.Sprintf("m%02d", i%16)
		if _, err := kv.Put("mix", key, []byte(fmt.Sprintf("b-%d", i)), WriteOptions{}); err != nil {
			fail(err)
		}
		if _, err := kv.Put("mix", key, []byte(fmt.Sprintf("d-%d", i)), WriteOptions{Durability: Durable}); err != nil {
			fail(err)
		}
		say("m %s %d", key, i)
	}
}

// TestKVBufferedCrash SIGKILLs a process in the middle of buffered and
// mixed writes and checks what a crash may lose: the database opens and
// checks clean; each writer's surviving buffered keys are a prefix of what
// it wrote, holding everything acknowledged well before the kill; and no
// acknowledged durable write was overwritten by an older buffered one.
func TestKVBufferedCrash(t *testing.T) {
	dir := t.TempDir()
	child := startCrashChild(t, "^TestKVBufferedCrashChild$", bufferedCrashChildEnv, dir)
	const margin = 500 * time.Millisecond
	type ack struct {
		line string
		at   time.Time
	}
	var acks []ack
	start := time.Now()
	for child.out.Scan() {
		acks = append(acks, ack{child.out.Text(), time.Now()})
		if el := time.Since(start); (len(acks) >= 5000 && el > 2*margin) || el > 5*time.Second {
			break
		}
	}
	killed := time.Now()
	child.kill(t, func(line string) { acks = append(acks, ack{line, killed}) })

	db, err := Open(dir)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer db.Close()
	if err := pebbleOf(db).CheckLevels(nil); err != nil {
		t.Errorf("CheckLevels after crash: %v", err)
	}
	if err := db.Scan([]byte(PrefixKV), func(k, v []byte) bool {
		if _, _, _, ok := decodeRecord(v); !ok {
			t.Errorf("corrupt record %q after crash", k)
			return false
		}
		return true
	}); err != nil {
		t.Fatalf("scan after crash: %v", err)
	}

	oldAcked := map[string]int{} // writer → highest index acked before killed-margin
	mixed := map[string]int{}    // key → highest durable index acked
	var nbuf, nmix int
	for _, a := range acks {
		f := strings.Fields(a.line)
		switch {
		case len(f) == 2 && strings.HasPrefix(f[0], "w"):
			nbuf++
			i, _ := strconv.Atoi(f[1])
			if a.at.Before(killed.Add(-margin)) {
				oldAcked[f[0]] = max(oldAcked[f[0]], i)
			}
		case len(f) == 3 && f[0] == "m":
			nmix++
			i, _ := strconv.Atoi(f[2])
			mixed[f[1]] = max(mixed[f[1]], i)
		default:
			t.Fatalf("child printed %q", a.line)
		}
	}
	if nbuf < 1000 || nmix < 10 {
		t.Fatalf("child acknowledged only %d buffered and %d mixed writes; stderr: %s", nbuf, nmix, child.stderr.String())
	}
	for _, w := range []string{"w0", "w1"} {
		present := 0
		for ; ; present++ {
			if _, _, ok := inPebble(t, db, "buf", fmt.Sprintf("%s/%08d", w, present)); !ok {
				break
			}
		}
		for i := present + 1; i < present+2000; i++ {
			if _, _, ok := inPebble(t, db, "buf", fmt.Sprintf("%s/%08d", w, i)); ok {
				t.Errorf("%s: key %d survived but key %d did not: not a prefix", w, i, present)
				break
			}
		}
		if want, ok := oldAcked[w]; ok && present <= want {
			t.Errorf("%s: %d keys survived, but key %d was acknowledged over %v before the kill", w, present, want, margin)
		}
		t.Logf("%s: %d buffered keys survived; %d acknowledged over %v before the kill", w, present, oldAcked[w]+1, margin)
	}
	for key, last := range mixed {
		got, _, ok := inPebble(t, db, "mix", key)
		var kind string
		var i int
		if ok {
			kind, i = got[:1], 0
			i, _ = strconv.Atoi(got[2:])
		}
		// Acknowledged d-last; the key may hold it or anything later, but
		// never b-last or earlier.
		if !ok || i < last || (i == last && kind != "d") {
			t.Errorf("mix/%s = %q after crash; durable write d-%d was acknowledged", key, got, last)
		}
	}
}

// TestKVDirectWriteWaitsForFlushInFlight holds a flush cycle between
// collecting a buffered record and committing it, and makes a direct write
// to the same key meanwhile: the direct write must wait for the commit, so
// the older buffered record cannot land over it in Pebble.
func TestKVDirectWriteWaitsForFlushInFlight(t *testing.T) {
	tests := []struct {
		name  string
		write func(kv *KV) error
		want  string // "" means not found
	}{
		{"durable put", func(kv *KV) error {
			_, err := kv.Put("b", "k", []byte("direct"), WriteOptions{Durability: Durable})
			return err
		}, "direct"},
		{"delete", func(kv *KV) error { return kv.Delete("b", "k", buffered) }, ""},
		{"batch", func(kv *KV) error {
			_, err := kv.Batch([]BatchOp{{Bucket: "b", Key: "other", Value: []byte("o")}, {Bucket: "b", Key: "k", Value: []byte("direct")}}, buffered)
			return err
		}, "direct"},
		{"durable cas", func(kv *KV) error {
			e, err := kv.Get("b", "k")
			if err == nil {
				_, err = kv.CAS("b", "k", e.Version, []byte("direct"), WriteOptions{Durability: Durable})
			}
			return err
		}, "direct"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			kv, db := openKVAt(t, dir, holdBuffer(KVConfig{}))
			held, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			kv.buf.commitHook = func() { once.Do(func() { close(held); <-release }) }
			if _, err := kv.Put("b", "k", []byte("buffered"), buffered); err != nil {
				t.Fatal(err)
			}
			flushed := make(chan error, 1)
			go func() { flushed <- kv.flushBuffered() }()
			<-held // the cycle holds "buffered" and has not committed it
			wrote := make(chan error, 1)
			go func() { wrote <- tt.write(kv) }()
			select {
			case err := <-wrote:
				t.Fatalf("direct write returned (%v) while an older record of its key was being flushed", err)
			case <-time.After(20 * time.Millisecond):
			}
			close(release)
			if err := <-wrote; err != nil {
				t.Fatal(err)
			}
			if err := <-flushed; err != nil {
				t.Fatal(err)
			}
			check := func(when string) {
				t.Helper()
				e, err := kv.Get("b", "k")
				got := string(e.Value)
				if errs.CodeOf(err) == errs.NotFound {
					got = ""
				}
				if got != tt.want {
					t.Errorf("%s: Get = %q (%v), want %q", when, got, err, tt.want)
				}
			}
			check("after the flush")
			if err := kv.Close(); err != nil {
				t.Fatal(err)
			}
			db.Close()
			kv, db = openKVAt(t, dir, KVConfig{})
			defer db.Close()
			defer kv.Close()
			check("after reopen")
		})
	}
}

// TestKVBufferedCloseFlushesAll keeps puts in the buffer until Close, then
// reopens the directory: every put is there, with its TTL's index entry,
// so the sweeper still expires it.
func TestKVBufferedCloseFlushesAll(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	kv, db := openKVAt(t, dir, holdBuffer(KVConfig{Clock: clk, SweepInterval: manualSweep}))
	const n = 3000
	vers := make([]uint64, n)
	for i := range n {
		o := buffered
		if i%3 == 0 {
			o.TTL = time.Minute
		}
		var err error
		if vers[i], err = kv.Put("b", fmt.Sprintf("k%05d", i), []byte(strconv.Itoa(i)), o); err != nil {
			t.Fatal(err)
		}
	}
	if err := kv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	db.Close()

	kv, db = openKVAt(t, dir, KVConfig{Clock: clk, SweepInterval: manualSweep})
	defer db.Close()
	defer kv.Close()
	for i := range n {
		e, err := kv.Get("b", fmt.Sprintf("k%05d", i))
		if err != nil || string(e.Value) != strconv.Itoa(i) || e.Version != vers[i] {
			t.Fatalf("k%05d after Close and reopen = %q@%d, %v; want %d@%d", i, e.Value, e.Version, err, i, vers[i])
		}
	}
	clk.Advance(2 * time.Minute)
	if got, err := kv.Sweep(); err != nil || got != n/3 {
		t.Errorf("Sweep = %d, %v; want %d (the keys with a TTL)", got, err, n/3)
	}
}

func TestKVConfigValidateBuffer(t *testing.T) {
	tests := []struct {
		name string
		cfg  KVConfig
		ok   bool
	}{
		{"defaults", KVConfig{}, true},
		{"set", KVConfig{FlushInterval: 5 * time.Millisecond, MaxBufferedBytes: 1 << 20}, true},
		{"negative interval", KVConfig{FlushInterval: -time.Millisecond}, false},
		{"negative limit", KVConfig{MaxBufferedBytes: -1}, false},
	}
	for _, tt := range tests {
		if got := tt.cfg.Validate() == nil; got != tt.ok {
			t.Errorf("%s: Validate ok = %v, want %v", tt.name, got, tt.ok)
		}
	}
	d := KVConfig{}.WithDefaults()
	if d.FlushInterval != time.Millisecond || d.MaxBufferedBytes != 4<<20 {
		t.Errorf("defaults = %v, %d; want 1ms, 4 MiB", d.FlushInterval, d.MaxBufferedBytes)
	}
}
