package system_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/testutil"
)

// TestMemoryAutoRaisesForTheRetry: under "memory": "auto" an invocation
// that runs out of memory is run again at a doubled limit, and answers;
// at memory_max it fails as any other.
func TestMemoryAutoRaisesForTheRetry(t *testing.T) {
	guest := testutil.BuildWasm(t, "../runtime/wasm/testdata/guest", true)
	s := openSystem(t)
	ctx := context.Background()
	for name, max := range map[string]registry.Size{"roomy": 512 << 20, "tight": 128 << 20} {
		cfg := registry.Config{Memory: registry.SizeAuto, MemoryMax: max}
		if _, err := s.Deploy(ctx, name, cfg, bytes.NewReader(guest)); err != nil {
			t.Fatal(err)
		}
	}
	// 200 MB do not fit the starting 128 MiB.
	out := call(t, s, "roomy", "alloc:200000000")
	if out.Err != nil || string(out.Output) != "200000000" {
		t.Fatalf("roomy: got %q, %v; want the answer after a raise", out.Output, out.Err)
	}
	f, err := s.Describe("roomy")
	if err != nil {
		t.Fatal(err)
	}
	if f.MemoryLimit != 256<<20 {
		t.Errorf("roomy's limit is %d MiB, want 256", f.MemoryLimit>>20)
	}
	out = call(t, s, "tight", "alloc:200000000")
	if errs.CodeOf(out.Err) != errs.OutOfMemory {
		t.Fatalf("tight: got %q, %v; want out_of_memory at its memory_max", out.Output, out.Err)
	}
}
