package store

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/errs"
)

func TestKVPutGetDelete(t *testing.T) {
	kv, _ := newTestKV(t, KVConfig{})
	v1, err := kv.Put("b", "users/1", []byte("alice"), WriteOptions{})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	e, err := kv.Get("b", "users/1")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got, want := string(e.Value), "alice"; got != want {
		t.Errorf("Get = %q, want %q", got, want)
	}
	if e.Version != v1 {
		t.Errorf("version = %d, want %d", e.Version, v1)
	}
	e.Value[0] = 'X' // callers own what Get returns; the cache must not change
	v2, err := kv.Put("b", "users/1", []byte("bob"), WriteOptions{Durability: Buffered})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if v2 <= v1 {
		t.Errorf("second version %d not above first %d", v2, v1)
	}
	if e, _ := kv.Get("b", "users/1"); string(e.Value) != "bob" || e.Version != v2 {
		t.Errorf("Get after overwrite = %q@%d, want bob@%d", e.Value, e.Version, v2)
	}
	if _, err := kv.Get("other", "users/1"); errs.CodeOf(err) != errs.NotFound || !errors.Is(err, ErrNotFound) {
		t.Errorf("Get in another bucket: %v, want not_found", err)
	}
	if err := kv.Delete("b", "users/1", WriteOptions{}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := kv.Get("b", "users/1"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("Get after delete: %v, want not_found", err)
	}
	if err := kv.Delete("b", "users/1", WriteOptions{}); err != nil {
		t.Errorf("Delete of a missing key: %v, want nil", err)
	}
	v3, _ := kv.Put("b", "users/1", []byte("carol"), WriteOptions{})
	if v3 <= v2 {
		t.Errorf("version after delete+recreate %d not above %d", v3, v2)
	}
}

func TestKVBadInput(t *testing.T) {
	kv, _ := newTestKV(t, KVConfig{MaxValueBytes: 1 << 20})
	if _, err := kv.Put("b", "k", []byte("keep"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		bucket string
		key    string
		value  []byte
		ttl    time.Duration
		want   errs.Code
	}{
		{"path trick bucket", "../etc", "k", nil, 0, errs.BadRequest},
		{"empty bucket", "", "k", nil, 0, errs.BadRequest},
		{"dot segment key", "b", "a/../k", nil, 0, errs.BadRequest},
		{"control char key", "b", "k\n", nil, 0, errs.BadRequest},
		{"long key", "b", strings.Repeat("x", 2000), nil, 0, errs.BadRequest},
		{"oversized value", "b", "k", make([]byte, 1<<20+1), 0, errs.PayloadTooLarge},
		{"negative ttl", "b", "k", []byte("x"), -time.Second, errs.BadRequest},
	}
	for _, tt := range tests {
		_, err := kv.Put(tt.bucket, tt.key, tt.value, WriteOptions{TTL: tt.ttl})
		if got := errs.CodeOf(err); got != tt.want {
			t.Errorf("%s: code = %q (%v), want %q", tt.name, got, err, tt.want)
		}
	}
	if _, err := kv.Put("b", "max", make([]byte, 1<<20), WriteOptions{}); err != nil {
		t.Errorf("Put of exactly 1 MiB: %v", err)
	}
	if e, _ := kv.Get("b", "k"); string(e.Value) != "keep" {
		t.Errorf("after rejected puts k = %q, want keep", e.Value)
	}
}

func TestKVCAS(t *testing.T) {
	kv, _ := newTestKV(t, KVConfig{})
	v1, err := kv.CAS("b", "k", 0, []byte("a"), WriteOptions{})
	if err != nil {
		t.Fatalf("create-only CAS: %v", err)
	}
	if _, err := kv.CAS("b", "k", 0, []byte("again"), WriteOptions{}); errs.CodeOf(err) != errs.Conflict {
		t.Errorf("create-only CAS on existing key: %v, want conflict", err)
	}
	v2, err := kv.CAS("b", "k", v1, []byte("b"), WriteOptions{})
	if err != nil {
		t.Fatalf("CAS at current version: %v", err)
	}
	_, err = kv.CAS("b", "k", v1, []byte("stale"), WriteOptions{})
	if errs.CodeOf(err) != errs.Conflict || !errors.Is(err, ErrVersionMismatch) {
		t.Errorf("stale CAS: %v, want conflict/ErrVersionMismatch", err)
	}
	if e, _ := kv.Get("b", "k"); string(e.Value) != "b" || e.Version != v2 {
		t.Errorf("after stale CAS: %q@%d, want b@%d", e.Value, e.Version, v2)
	}
}

// TestKVCASAndIncrementHammer checks atomicity: concurrent CAS loops and
// increments on one key never lose an update.
func TestKVCASAndIncrementHammer(t *testing.T) {
	kv, _ := newTestKV(t, KVConfig{Durability: Buffered})
	const workers, each = 8, 200
	var wg sync.WaitGroup
	for range workers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range each {
				if _, _, err := kv.Increment("b", "ctr", 1, WriteOptions{}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for done := 0; done < each; {
				e, err := kv.Get("b", "cas")
				var n int
				var ver uint64
				if err == nil {
					n, _ = strconv.Atoi(string(e.Value))
					ver = e.Version
				} else if errs.CodeOf(err) != errs.NotFound {
					t.Error(err)
					return
				}
				_, err = kv.CAS("b", "cas", ver, []byte(strconv.Itoa(n+1)), WriteOptions{})
				if errs.CodeOf(err) == errs.Conflict {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				done++
			}
		}()
	}
	wg.Wait()
	for _, k := range []string{"ctr", "cas"} {
		e, err := kv.Get("b", k)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(e.Value), strconv.Itoa(workers*each); got != want {
			t.Errorf("%s = %s, want %s", k, got, want)
		}
	}
}

func TestKVIncrement(t *testing.T) {
	kv, _ := newTestKV(t, KVConfig{})
	tests := []struct {
		delta int64
		want  int64
	}{{5, 5}, {-7, -2}, {0, -2}, {1 << 40, 1<<40 - 2}}
	for _, tt := range tests {
		got, _, err := kv.Increment("b", "n", tt.delta, WriteOptions{})
		if err != nil || got != tt.want {
			t.Errorf("Increment(%d) = %d, %v; want %d", tt.delta, got, err, tt.want)
		}
	}
	kv.Put("b", "text", []byte("hello"), WriteOptions{})
	if _, _, err := kv.Increment("b", "text", 1, WriteOptions{}); !errors.Is(err, ErrNotInteger) {
		t.Errorf("Increment of text: %v, want ErrNotInteger", err)
	}
	kv.Put("b", "max", []byte("9223372036854775807"), WriteOptions{})
	if _, _, err := kv.Increment("b", "max", 1, WriteOptions{}); errs.CodeOf(err) != errs.BadRequest {
		t.Errorf("overflowing Increment: %v, want bad_request", err)
	}
}

func TestKVListPaging(t *testing.T) {
	kv, _ := newTestKV(t, KVConfig{})
	var want []string
	for i := range 25 {
		k := fmt.Sprintf("p/%02d", i)
		want = append(want, k)
		kv.Put("b", k, []byte("v"), WriteOptions{Durability: Buffered})
	}
	kv.Put("b", "q/other", []byte("v"), WriteOptions{})
	kv.Put("b2", "p/zz", []byte("v"), WriteOptions{})
	var got []string
	cursor, pages := "", 0
	for {
		page, err := kv.List("b", "p/", cursor, 10)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		pages++
		got = append(got, page.Keys...)
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("listed %v, want %v", got, want)
	}
	if pages != 3 {
		t.Errorf("pages = %d, want 3", pages)
	}
	if _, err := kv.List("b", "p/", "q/x", 10); errs.CodeOf(err) != errs.BadRequest {
		t.Errorf("cursor outside prefix: %v, want bad_request", err)
	}
}

func TestKVBatchAllOrNothing(t *testing.T) {
	kv, _ := newTestKV(t, KVConfig{})
	kv.Put("b", "gone", []byte("x"), WriteOptions{})
	vers, err := kv.Batch([]BatchOp{
		{Bucket: "b", Key: "a", Value: []byte("1")},
		{Bucket: "c", Key: "b", Value: []byte("2")},
		{Bucket: "b", Key: "gone", Delete: true},
	}, WriteOptions{})
	if err != nil {
		t.Fatalf("Batch: %v", err)
	}
	if vers[0] == 0 || vers[1] == 0 || vers[2] != 0 {
		t.Errorf("versions = %v, want two non-zero and a zero", vers)
	}
	if _, err := kv.Get("b", "gone"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("deleted key: %v", err)
	}
	_, err = kv.Batch([]BatchOp{
		{Bucket: "b", Key: "a", Value: []byte("changed")},
		{Bucket: "b", Key: "../bad", Value: []byte("x")},
	}, WriteOptions{})
	if errs.CodeOf(err) != errs.BadRequest {
		t.Errorf("batch with a bad key: %v, want bad_request", err)
	}
	if e, _ := kv.Get("b", "a"); string(e.Value) != "1" {
		t.Errorf("after failed batch a = %q, want 1 (nothing half-written)", e.Value)
	}
}

func TestKVTTL(t *testing.T) {
	clk := newFakeClock()
	kv, db := newTestKV(t, KVConfig{Clock: clk, SweepInterval: manualSweep})
	kv.Put("b", "short", []byte("x"), WriteOptions{TTL: time.Minute})
	kv.Put("b", "renewed", []byte("x"), WriteOptions{TTL: time.Minute})
	kv.Put("b", "forever", []byte("x"), WriteOptions{})
	kv.Get("b", "short") // cached: the cache must expire it too
	clk.Advance(30 * time.Second)
	kv.Put("b", "renewed", []byte("y"), WriteOptions{TTL: time.Hour})
	clk.Advance(31 * time.Second)
	if _, err := kv.Get("b", "short"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("expired key: %v, want not_found", err)
	}
	page, _ := kv.List("b", "", "", 0)
	if got, want := strings.Join(page.Keys, ","), "forever,renewed"; got != want {
		t.Errorf("List = %s, want %s", got, want)
	}
	n, err := kv.Sweep()
	if err != nil || n != 1 {
		t.Errorf("Sweep = %d, %v; want 1 deleted (renewed key kept)", n, err)
	}
	if _, err := db.Get(appendKVKey(nil, "b", "short")); !errors.Is(err, ErrNotFound) {
		t.Errorf("swept record still in Pebble: %v", err)
	}
	if e, err := kv.Get("b", "renewed"); err != nil || string(e.Value) != "y" {
		t.Errorf("renewed = %q, %v", e.Value, err)
	}
	var idx int
	db.Scan([]byte(PrefixExpiry), func(_, _ []byte) bool { idx++; return true })
	if idx != 1 {
		t.Errorf("expiry index has %d entries, want 1 (renewed's)", idx)
	}
}

// TestKVTTLTooLarge checks that a TTL whose expiry the record cannot hold
// (unix nanoseconds end in 2262) is refused before anything is written.
// 2,100,000 h was accepted, the expiry wrapped to a negative time, and the
// key read as expired, its old value gone (fails without the fix).
func TestKVTTLTooLarge(t *testing.T) {
	kv, _ := newTestKV(t, KVConfig{})
	if _, err := kv.Put("b", "k", []byte("old"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, ttl := range []time.Duration{MaxTTL + time.Millisecond, 2_100_000 * time.Hour, math.MaxInt64} {
		_, err := kv.Put("b", "k", []byte("new"), WriteOptions{TTL: ttl})
		if errs.CodeOf(err) != errs.BadRequest || !strings.Contains(err.Error(), MaxTTL.String()) {
			t.Errorf("Put ttl %v: %v, want bad_request naming the maximum", ttl, err)
		}
		if _, err := kv.CAS("b", "k", 0, []byte("new"), WriteOptions{TTL: ttl}); errs.CodeOf(err) != errs.BadRequest {
			t.Errorf("CAS ttl %v: %v, want bad_request", ttl, err)
		}
		_, err = kv.Batch([]BatchOp{{Bucket: "b", Key: "k", Value: []byte("new"), TTL: ttl}}, WriteOptions{})
		if errs.CodeOf(err) != errs.BadRequest {
			t.Errorf("Batch ttl %v: %v, want bad_request", ttl, err)
		}
		if err := kv.Ephemeral().Put("root", "k", []byte("x"), ttl, DefaultDurability); errs.CodeOf(err) != errs.BadRequest {
			t.Errorf("ephemeral Put ttl %v: %v, want bad_request", ttl, err)
		}
	}
	if e, err := kv.Get("b", "k"); err != nil || string(e.Value) != "old" || !e.Expires.IsZero() {
		t.Errorf("after refused writes: %q expires %v, %v; want old, never", e.Value, e.Expires, err)
	}
	if _, err := kv.Put("b", "max", []byte("x"), WriteOptions{TTL: MaxTTL}); err != nil {
		t.Fatalf("Put ttl %v: %v", MaxTTL, err)
	}
	if e, err := kv.Get("b", "max"); err != nil || time.Until(e.Expires) < MaxTTL-time.Hour {
		t.Errorf("ttl %v: expires %v, %v; want about %v from now", MaxTTL, e.Expires, err, MaxTTL)
	}
}

func TestKVCacheCoherentAndCounted(t *testing.T) {
	kv, _ := newTestKV(t, KVConfig{})
	kv.Put("b", "k", []byte("v1"), WriteOptions{})
	for i := range 3 {
		kv.Put("b", "k", []byte(fmt.Sprint("v", i+2)), WriteOptions{})
		e, err := kv.Get("b", "k")
		if err != nil || string(e.Value) != fmt.Sprint("v", i+2) {
			t.Fatalf("read after write = %q, %v", e.Value, err)
		}
	}
	kv.Delete("b", "k", WriteOptions{})
	if _, err := kv.Get("b", "k"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("read after delete: %v", err)
	}
	before := kv.CacheStats()
	kv.Put("b", "x", []byte("1"), WriteOptions{})
	kv.Get("b", "x")
	kv.Get("b", "nope")
	after := kv.CacheStats()
	if got := after.Hits - before.Hits; got != 1 {
		t.Errorf("hits += %d, want 1", got)
	}
	if got := after.Misses - before.Misses; got < 1 {
		t.Errorf("misses += %d, want ≥ 1", got)
	}
}

// TestKVCacheRaceReadersWriters hammers one key with writers and readers:
// a reader must never see a value older than the last acknowledged write it
// knows of.
func TestKVCacheRaceReadersWriters(t *testing.T) {
	kv, _ := newTestKV(t, KVConfig{Durability: Buffered})
	var mu sync.Mutex
	acked := 0
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= 2000; i++ {
			kv.Put("b", "k", []byte(strconv.Itoa(i)), WriteOptions{})
			mu.Lock()
			acked = i
			mu.Unlock()
		}
	}()
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3000 {
				mu.Lock()
				floor := acked
				mu.Unlock()
				e, err := kv.Get("b", "k")
				if err != nil {
					if floor > 0 {
						t.Errorf("Get after ack %d: %v", floor, err)
					}
					continue
				}
				if n, _ := strconv.Atoi(string(e.Value)); n < floor {
					t.Errorf("read %d after write %d was acknowledged", n, floor)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestKVVersionsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	kv, db := openKVAt(t, dir, KVConfig{})
	v1, _ := kv.Put("b", "k", []byte("x"), WriteOptions{})
	kv.Close()
	db.Close()
	kv, db = openKVAt(t, dir, KVConfig{})
	defer db.Close()
	defer kv.Close()
	e, err := kv.Get("b", "k")
	if err != nil || !bytes.Equal(e.Value, []byte("x")) {
		t.Fatalf("after reopen: %q, %v", e.Value, err)
	}
	v2, _ := kv.Put("b", "k", []byte("y"), WriteOptions{})
	if v2 <= v1 {
		t.Errorf("version after reopen %d not above %d", v2, v1)
	}
}

func TestEphemeralScopes(t *testing.T) {
	clk := newFakeClock()
	kv, _ := newTestKV(t, KVConfig{Clock: clk, EphemeralTTL: time.Hour, SweepInterval: manualSweep})
	eph := kv.Ephemeral()
	if err := eph.Put("root1", "shuffle/0", []byte("a"), 0, DefaultDurability); err != nil {
		t.Fatal(err)
	}
	eph.Put("root1", "shuffle/1", []byte("b"), time.Minute, DefaultDurability)
	eph.Put("root2", "shuffle/0", []byte("other"), 0, DefaultDurability)
	if v, err := eph.Get("root1", "shuffle/0"); err != nil || string(v) != "a" {
		t.Errorf("Get = %q, %v", v, err)
	}
	if v, _ := eph.Get("root2", "shuffle/0"); string(v) != "other" {
		t.Errorf("root2 sees %q, want its own value", v)
	}
	if _, err := eph.Get("root3", "shuffle/0"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("other tree: %v, want not_found", err)
	}
	if err := eph.Put("a/b", "k", nil, 0, DefaultDurability); errs.CodeOf(err) != errs.BadRequest {
		t.Errorf("root with '/': %v, want bad_request", err)
	}
	page, _ := eph.List("root1", "shuffle/", "", 0)
	if len(page.Keys) != 2 {
		t.Errorf("List = %v, want 2 keys", page.Keys)
	}
	clk.Advance(2 * time.Minute)
	if _, err := eph.Get("root1", "shuffle/1"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("expired ephemeral key: %v", err)
	}
	if err := eph.EndScope("root1"); err != nil {
		t.Fatal(err)
	}
	if _, err := eph.Get("root1", "shuffle/0"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("after EndScope: %v, want not_found", err)
	}
	if v, _ := eph.Get("root2", "shuffle/0"); string(v) != "other" {
		t.Errorf("EndScope(root1) touched root2: %q", v)
	}
	clk.Advance(2 * time.Hour)
	if _, err := eph.Get("root2", "shuffle/0"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("scope past the default TTL: %v, want not_found", err)
	}
	if n, err := kv.Sweep(); err != nil || n != 1 {
		t.Errorf("Sweep = %d, %v; want 1 (root2's key)", n, err)
	}
}
