package wasm

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/mote-run/mote/internal/host"
)

// FuzzScanModule feeds arbitrary bytes to the import scanner, which reads
// untrusted modules: it must never panic.
func FuzzScanModule(f *testing.F) {
	for _, m := range [][]byte{tinyCommand, tinyReactor, bombCommand, importingCommand("env", "f", nil, nil)} {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = scanModule(b)
	})
}

// FuzzParseArgs checks that the host-call fast path decodes arguments
// exactly as host.ParseArgs does.
func FuzzParseArgs(f *testing.F) {
	f.Add(host.AppendArgs(nil, []byte("key"), []byte{}, []byte("value")))
	f.Add([]byte{0x80})
	f.Add([]byte{5, 'a'})
	g := newGuest("fn", nil, 0)
	f.Fuzz(func(t *testing.T, b []byte) {
		want, wantErr := host.ParseArgs(b)
		got, ok := g.parseArgs(b)
		if ok != (wantErr == nil) {
			t.Fatalf("parseArgs ok=%v, host.ParseArgs err=%v", ok, wantErr)
		}
		if len(got) != len(want) {
			t.Fatalf("got %d args, want %d", len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("arg %d: got %q, want %q", i, got[i], want[i])
			}
		}
	})
}

func TestScanModule(t *testing.T) {
	s, err := scanModule(importingCommand("env", "foo", nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.imports) != 1 || s.imports[0] != (wasmImport{"env", "foo", importFunc}) {
		t.Errorf("imports = %+v, want [env.foo function]", s.imports)
	}
	if s.minPages != 1 {
		t.Errorf("minPages = %d, want 1", s.minPages)
	}
	for _, b := range [][]byte{nil, []byte("\x00asm"), []byte("\x00asm\x01\x00\x00\x00\x02\x05\x01"), []byte("nope nope")} {
		if _, err := scanModule(b); err == nil {
			t.Errorf("scanModule(%q): got nil error, want malformed", b)
		}
	}
}

// FuzzInstrument feeds arbitrary bytes to the loop instrumenter, which
// rewrites untrusted modules: it must never panic, fail only with
// errUninstrumentable, and whenever wazero accepts the original, accept
// the rewritten module too.
func FuzzInstrument(f *testing.F) {
	for _, m := range [][]byte{tinyCommand, tinyReactor, bombCommand, loopCommand, sleepCommand, sinkModule,
		importingCommand("env", "f", nil, nil)} {
		f.Add(m)
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	defer rt.Close(ctx)
	f.Fuzz(func(t *testing.T, b []byte) {
		ins, err := instrument(b)
		if err != nil {
			if !errors.Is(err, errUninstrumentable) {
				t.Fatalf("instrument: %v, want errUninstrumentable", err)
			}
			return
		}
		orig, err := compileModule(ctx, rt, b)
		if err != nil {
			return // invalid to begin with: the rewrite may be too
		}
		orig.Close(ctx)
		c, err := compileModule(ctx, rt, ins.bin)
		if err != nil {
			t.Fatalf("the original compiles, the instrumented module does not: %v", err)
		}
		c.Close(ctx)
	})
}
