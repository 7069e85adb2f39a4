package store

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"
	"testing"
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
