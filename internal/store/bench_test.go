package store

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

func BenchmarkKVGetCached100B(b *testing.B) {
	kv, _ := newTestKV(b, KVConfig{})
	kv.Put("b", "key", make([]byte, 100), WriteOptions{})
	kv.Get("b", "key")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kv.Get("b", "key"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKVGetUncached100B(b *testing.B) {
	kv, _ := newTestKV(b, KVConfig{CacheBytes: -1})
	for i := range 1000 {
		kv.Put("b", fmt.Sprint("key", i), make([]byte, 100), WriteOptions{Durability: Buffered})
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := kv.Get("b", fmt.Sprint("key", i%1000)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkKVPutBuffered100B(b *testing.B) {
	kv, _ := newTestKV(b, KVConfig{})
	v := make([]byte, 100)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := kv.Put("b", fmt.Sprint("key", i%10000), v, WriteOptions{Durability: Buffered}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkKVPutDurable16 measures durable puts from 16 concurrent writers:
// Pebble's group commit shares each fsync among the writers waiting on it.
// ns/op is per put across all writers; puts/s is the throughput.
func BenchmarkKVPutDurable16(b *testing.B) {
	kv, _ := newTestKV(b, KVConfig{Durability: Durable})
	v := make([]byte, 100)
	var n atomic.Int64
	b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0))) // 16 writers in all
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if _, err := kv.Put("b", fmt.Sprint("key", i), v, WriteOptions{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
}

func BenchmarkKVPutDurable1(b *testing.B) {
	kv, _ := newTestKV(b, KVConfig{Durability: Durable})
	v := make([]byte, 100)
	i := 0
	for b.Loop() {
		if _, err := kv.Put("b", fmt.Sprint("key", i), v, WriteOptions{}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkObjectPut64MiB(b *testing.B) {
	o, _ := newTestObjects(b, ObjectsConfig{})
	b.SetBytes(64 << 20)
	for b.Loop() {
		if _, err := o.Put("b", "obj", &genReader{left: 64 << 20, state: 1, h: sha256.New()}, ""); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkObjectGet64MiB(b *testing.B) {
	o, _ := newTestObjects(b, ObjectsConfig{})
	if _, err := o.Put("b", "obj", &genReader{left: 64 << 20, state: 1, h: sha256.New()}, ""); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(64 << 20)
	for b.Loop() {
		obj, err := o.Open("b", "obj")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, obj); err != nil {
			b.Fatal(err)
		}
		obj.Close()
	}
}

func BenchmarkLRUGet(b *testing.B) {
	c := NewLRU(64<<20, 16)
	c.Put("kv/b/key", bytes.Repeat([]byte("x"), 100), 1, 0)
	k := []byte("kv/b/key")
	for b.Loop() {
		c.Get(k, at(0))
	}
}

// benchKeys returns n distinct keys, built before the timer so the
// benchmarks measure the store, not fmt.
func benchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "key" + strconv.Itoa(i)
	}
	return keys
}

// BenchmarkKVPutBuffered1000Keys is issue 4's store target: one writer,
// buffered puts of 100-byte values to 1,000 keys round-robin. cpu-ns/op
// is the whole process's CPU time per put, the flusher's included.
func BenchmarkKVPutBuffered1000Keys(b *testing.B) {
	kv, _ := newTestKV(b, KVConfig{})
	keys := benchKeys(1000)
	v := make([]byte, 100)
	b.ReportAllocs()
	cpu0 := processCPU(b)
	i := 0
	for b.Loop() {
		if _, err := kv.Put("b", keys[i%len(keys)], v, WriteOptions{Durability: Buffered}); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// processCPU returns the process's user+system CPU time in nanoseconds.
func processCPU(b *testing.B) int64 {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkKVPutBufferedUnique writes a new key every time (1M keys
// round-robin), so nothing coalesces before it reaches Pebble: the
// sustained rate when every put must be flushed.
func BenchmarkKVPutBufferedUnique(b *testing.B) {
	kv, _ := newTestKV(b, KVConfig{})
	keys := benchKeys(1 << 20)
	v := make([]byte, 100)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := kv.Put("b", keys[i%len(keys)], v, WriteOptions{Durability: Buffered}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkKVPutBuffered16 is 16 concurrent writers of buffered puts over
// 1,000 keys; ns/op is per put across all writers.
func BenchmarkKVPutBuffered16(b *testing.B) {
	kv, _ := newTestKV(b, KVConfig{})
	keys := benchKeys(1000)
	v := make([]byte, 100)
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if _, err := kv.Put("b", keys[i%int64(len(keys))], v, WriteOptions{Durability: Buffered}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
}

// BenchmarkKVGetAfterPutBuffered is a buffered put followed by a get of
// the same key (1,000 keys round-robin): read-your-writes on the hot path.
func BenchmarkKVGetAfterPutBuffered(b *testing.B) {
	kv, _ := newTestKV(b, KVConfig{})
	keys := benchKeys(1000)
	v := make([]byte, 100)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := keys[i%len(keys)]
		if _, err := kv.Put("b", k, v, WriteOptions{Durability: Buffered}); err != nil {
			b.Fatal(err)
		}
		if _, err := kv.Get("b", k); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// pebbleBenchRecords opens a DB (closed when b ends) and returns it with
// 1,000 KV record keys and one 100 B record, for the benchmarks of Pebble's
// own write paths below.
func pebbleBenchRecords(b *testing.B) (*DB, [][]byte, []byte) {
	b.Helper()
	db := openTestDB(b, b.TempDir())
	b.Cleanup(func() { db.Close() })
	keys := benchKeys(1000)
	bk := make([][]byte, len(keys))
	for i, k := range keys {
		bk[i] = []byte("kv/b/" + k)
	}
	return db, bk, encodeRecord(1, 0, make([]byte, 100))
}

// BenchmarkPebbleBatchNoSync1000 measures the other design: what one
// record costs inside a 1,000-record batch committed without sync (the
// flusher's unit of work), against one commit per record.
func BenchmarkPebbleBatchNoSync1000(b *testing.B) {
	db, bk, rec := pebbleBenchRecords(b)
	b.ReportAllocs()
	for b.Loop() {
		batch := pebbleOf(db).NewBatch()
		for _, k := range bk {
			_ = batch.Set(k, rec, nil)
		}
		if err := batch.Commit(pebble.NoSync); err != nil {
			b.Fatal(err)
		}
		batch.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(bk)), "ns/record")
}

func BenchmarkPebbleSetNoSync(b *testing.B) {
	db, bk, rec := pebbleBenchRecords(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := pebbleOf(db).Set(bk[i%len(bk)], rec, pebble.NoSync); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkWALSyncerIdleTick is what the WAL syncer costs an idle DB each
// SyncInterval: reading Pebble's count of bytes committed to the WAL.
func BenchmarkWALSyncerIdleTick(b *testing.B) {
	db := openTestDB(b, b.TempDir())
	b.Cleanup(func() { db.Close() })
	b.ReportAllocs()
	for b.Loop() {
		_ = pebbleOf(db).Metrics().WAL.BytesIn
	}
}
