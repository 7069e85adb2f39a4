package baas

import (
	"context"
	"strconv"
	"testing"
)

func BenchmarkCallKVGetCached100B(b *testing.B) {
	s := newService(b)
	ctx := context.Background()
	mustCall(b, s, admin, OpKVPut, "b", "key", string(make([]byte, 100)))
	args := [][]byte{[]byte("b"), []byte("key")}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Call(ctx, admin, OpKVGet, args); err != nil {
			b.Fatal(err)
		}
	}
	st := s.Stats().KVCache
	b.ReportMetric(float64(st.Hits)/float64(st.Hits+st.Misses), "hit-ratio")
}

func BenchmarkCallKVPutBuffered100B(b *testing.B) {
	s := newService(b)
	ctx := context.Background()
	val := make([]byte, 100)
	buffered := []byte("buffered")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		args := [][]byte{[]byte("b"), strconv.AppendInt([]byte("key"), int64(i%10000), 10), val, nil, buffered}
		if _, err := s.Call(ctx, admin, OpKVPut, args); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkCallCacheGet(b *testing.B) {
	s := newService(b)
	ctx := context.Background()
	mustCall(b, s, admin, OpCachePut, "k", string(make([]byte, 100)))
	args := [][]byte{[]byte("k")}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Call(ctx, admin, OpCacheGet, args); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCallCounterAdd(b *testing.B) {
	s := newService(b)
	ctx := context.Background()
	args := [][]byte{[]byte("c"), []byte("n"), []byte("1")}
	for b.Loop() {
		if _, err := s.Call(ctx, admin, OpCounterAdd, args); err != nil {
			b.Fatal(err)
		}
	}
}
