package store

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// BenchmarkEphemeralShuffle is a MapReduce shuffle's write and read
// (examples/mapreduce): 2 writers put 1 MiB values of random bytes
// (incompressible, as sort records are) into one tree's ephemeral scope,
// buffered, 64 MiB per op, then every value is read back once and the
// scope is ended. MB/s is of the data written.
func BenchmarkEphemeralShuffle(b *testing.B) {
	kv, _ := newTestKV(b, KVConfig{})
	eph := kv.Ephemeral()
	const chunk, perOp = 1 << 20, 64
	vals := make([][]byte, 8)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range vals {
		vals[i] = make([]byte, chunk)
		for j := range vals[i] {
			vals[i][j] = byte(r.Uint32())
		}
	}
	b.SetBytes(chunk * perOp)
	op := 0
	for b.Loop() {
		root := fmt.Sprint("tree-", op)
		op++
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < perOp; i += 2 {
					if err := eph.Put(root, fmt.Sprint("s/", i), vals[i%len(vals)], 0, Buffered); err != nil {
						errs[w] = err
						return
					}
				}
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		for i := 0; i < perOp; i++ {
			if v, err := eph.Get(root, fmt.Sprint("s/", i)); err != nil || len(v) != chunk {
				b.Fatalf("get %d: %d bytes, %v", i, len(v), err)
			}
		}
		if err := eph.EndScope(root); err != nil {
			b.Fatal(err)
		}
	}
}
