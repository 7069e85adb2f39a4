package baas

import (
	"context"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/store"
)

// TestKVGetKeepsNoArgument checks what kvGet's argument views rely on: a
// get that misses the cache fills it without keeping the bucket or key it
// was given, so when the caller then reuses those bytes (as a wasm guest
// does) the cached entry is still found under its own key.
func TestKVGetKeepsNoArgument(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(dir + "/db")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	open := func() *Service {
		t.Helper()
		s, err := New(Config{DB: db, Dir: dir, KV: store.KVConfig{SweepInterval: time.Hour}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	mustCall(t, s, admin, OpKVPut, "b1", "k1", "v1")
	mustCall(t, s, admin, OpKVPut, "b2", "k2", "v2")
	s.Close()
	s = open() // an empty cache: the next get fills it
	defer s.Close()

	ctx := context.Background()
	mem := []byte("b1k1")
	for _, op := range []string{OpKVGet, OpKVGetV} {
		if _, err := s.Call(ctx, admin, op, [][]byte{mem[:2], mem[2:]}); err != nil {
			t.Fatalf("%s b1/k1: %v", op, err)
		}
	}
	copy(mem, "b2k2") // the guest reuses its memory

	before := s.Stats().KVCache
	tests := []struct{ bucket, key, want string }{{"b1", "k1", "v1"}, {"b2", "k2", "v2"}, {"b1", "k1", "v1"}}
	for _, tt := range tests {
		if got := mustCall(t, s, admin, OpKVGet, tt.bucket, tt.key); got != tt.want {
			t.Errorf("kv.get %s/%s = %q, want %q", tt.bucket, tt.key, got, tt.want)
		}
	}
	after := s.Stats().KVCache
	// b1/k1 was cached by the first get (twice a hit now), b2/k2 is filled
	// now (a miss, then no more gets of it).
	if got, want := after.Hits-before.Hits, uint64(2); got != want {
		t.Errorf("cache hits = %d, want %d (the entry filled from reused bytes is lost)", got, want)
	}
}

// TestKVPutKeepsNoArgument checks what kvPut's argument views rely on: a
// put, buffered or durable, keeps none of the bucket, key or value bytes
// it was given, so the caller may reuse them at once.
func TestKVPutKeepsNoArgument(t *testing.T) {
	for _, durability := range []string{"buffered", "durable"} {
		t.Run(durability, func(t *testing.T) {
			s := newService(t)
			ctx := context.Background()
			mem := []byte("b1k1v1")
			argv := [][]byte{mem[:2], mem[2:4], mem[4:], nil, []byte(durability)}
			if _, err := s.Call(ctx, admin, OpKVPut, argv); err != nil {
				t.Fatal(err)
			}
			copy(mem, "b2k2v2") // the guest reuses its memory
			tests := []struct{ bucket, key, want string }{{"b1", "k1", "v1"}, {"b2", "k2", ""}}
			for _, tt := range tests {
				got, err := call(t, s, admin, OpKVGet, tt.bucket, tt.key)
				if tt.want == "" {
					if err == nil {
						t.Errorf("kv.get %s/%s = %q, want not found", tt.bucket, tt.key, got)
					}
					continue
				}
				if err != nil || string(got) != tt.want {
					t.Errorf("kv.get %s/%s = %q, %v; want %q", tt.bucket, tt.key, got, err, tt.want)
				}
			}
			s.Close()
			s2, err := New(Config{DB: s.cfg.DB, Dir: s.cfg.Dir, KV: store.KVConfig{SweepInterval: time.Hour}})
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			if got := mustCall(t, s2, admin, OpKVGet, "b1", "k1"); got != "v1" {
				t.Errorf("after reopening: kv.get b1/k1 = %q, want v1", got)
			}
		})
	}
}
