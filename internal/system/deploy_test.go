package system_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/logs"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/runtime/wasm"
	"github.com/mote-run/mote/internal/system"
)

// reactorModule is a minimal reactor: mote_handle returns 0, memory is
// exported, and _initialize runs nop, or unreachable when trap is set,
// which fails every instance's start while the module still compiles.
func reactorModule(trap bool) []byte {
	initOp := byte(0x01) // nop
	if trap {
		initOp = 0x00 // unreachable
	}
	return []byte{
		0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
		0x01, 0x0a, 0x02, 0x60, 0x00, 0x00, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7e, // types
		0x03, 0x03, 0x02, 0x00, 0x01, // funcs
		0x05, 0x03, 0x01, 0x00, 0x01, // memory
		0x07, 0x26, 0x03, // exports
		0x0b, '_', 'i', 'n', 'i', 't', 'i', 'a', 'l', 'i', 'z', 'e', 0x00, 0x00,
		0x0b, 'm', 'o', 't', 'e', '_', 'h', 'a', 'n', 'd', 'l', 'e', 0x00, 0x01,
		0x06, 'm', 'e', 'm', 'o', 'r', 'y', 0x02, 0x00,
		0x0a, 0x0a, 0x02, 0x03, 0x00, initOp, 0x0b, 0x04, 0x00, 0x42, 0x00, 0x0b, // code
	}
}

// TestFailedWarmUpLeavesNoVersion: a deploy whose instances cannot start
// is refused and leaves no version behind, neither on a new function (no
// "version 0 of 1") nor on one that already serves.
func TestFailedWarmUpLeavesNoVersion(t *testing.T) {
	ctx := context.Background()
	s := openSystem(t)
	if _, err := s.Deploy(ctx, "ghost", registry.Config{}, bytes.NewReader(reactorModule(true))); err == nil {
		t.Fatal("deploy of a module whose _initialize traps: got no error")
	}
	if _, err := s.Describe("ghost"); errs.CodeOf(err) != errs.NotFound {
		t.Fatalf("after a failed first deploy: got %v, want not_found", err)
	}

	if _, err := s.Deploy(ctx, "f", registry.Config{}, bytes.NewReader(reactorModule(false))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deploy(ctx, "f", registry.Config{}, bytes.NewReader(reactorModule(true))); err == nil {
		t.Fatal("redeploy of a trapping module: got no error")
	}
	f, err := s.Describe("f")
	if err != nil {
		t.Fatal(err)
	}
	if f.Current != 1 || f.Latest != 1 || len(f.Versions) != 1 {
		t.Fatalf("after a failed redeploy: current %d latest %d versions %d, want 1 1 1", f.Current, f.Latest, len(f.Versions))
	}
	v, err := s.Deploy(ctx, "f", registry.Config{}, bytes.NewReader(reactorModule(false)))
	if err != nil {
		t.Fatal(err)
	}
	if v.Number != 2 {
		t.Fatalf("the next deploy: version %d, want 2", v.Number)
	}
}

// TestDataDirInUse: a second system on the same data directory says
// which process has it (Pebble's own error was "resource temporarily
// unavailable"), and the directory is free again after Shutdown.
func TestDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	open := func() (*system.System, error) {
		w, err := wasm.New(context.Background(), wasm.Config{})
		if err != nil {
			t.Fatal(err)
		}
		return system.Open(context.Background(), system.Config{DataDir: dir, Runtimes: map[runtime.Kind]runtime.Runtime{runtime.KindWasm: w}})
	}
	s, err := open()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open(); !errors.Is(err, system.ErrDataDirInUse) || !strings.Contains(err.Error(), fmt.Sprintf("PID %d", os.Getpid())) {
		t.Fatalf("second open: got %v, want in use by PID %d", err, os.Getpid())
	}
	s.Shutdown(context.Background())
	s2, err := open()
	if err != nil {
		t.Fatalf("open after Shutdown: %v", err)
	}
	s2.Shutdown(context.Background())
}

// TestReportAttributesTimeout: an invocation that runs into its timeout
// leaves a report line under its own id that says so.
func TestReportAttributesTimeout(t *testing.T) {
	ctx := context.Background()
	s := openSystem(t)
	spin := reactorModule(false)
	// mote_handle becomes "loop br 0 end; i64.const 0": it never returns.
	spin = append(spin[:len(spin)-12], 0x0a, 0x0f, 0x02, 0x03, 0x00, 0x01, 0x0b,
		0x09, 0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x42, 0x00, 0x0b)
	if _, err := s.Deploy(ctx, "f", registry.Config{}, bytes.NewReader(reactorModule(false))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deploy(ctx, "spin", registry.Config{Timeout: registry.Duration(50 * time.Millisecond)}, bytes.NewReader(spin)); err != nil {
		t.Fatal(err)
	}
	out, err := s.Invoke(ctx, system.Invocation{Function: "spin"})
	if err != nil {
		t.Fatal(err)
	}
	if errs.CodeOf(out.Err) != errs.Timeout {
		t.Fatalf("invocation: got %v, want a timeout", out.Err)
	}
	ok, err := s.Invoke(ctx, system.Invocation{Function: "f"})
	if err != nil || ok.Err != nil {
		t.Fatal(err, ok.Err)
	}
	if ls, _ := s.Logs.Tail(logs.Query{Function: "f", Invocation: ok.ID}); len(ls) != 1 || ls[0].Report.MaxMemMB != 1 || ls[0].Report.ErrorCode != "" {
		t.Errorf("a reactor's report: got %+v, want max memory 1 MB (its one page, rounded up) and no error", ls)
	}
	ls, err := s.Logs.Tail(logs.Query{Function: "spin", Invocation: out.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 1 || ls[0].Stream != logs.StreamReport || ls[0].Report.ErrorCode != string(errs.Timeout) || ls[0].Report.Version != "1" || ls[0].Report.MemoryMB != 128 {
		t.Fatalf("the invocation's log: got %+v, want one report of a timeout", ls)
	}
	if r := ls[0].Report; r.DurationUs < 50_000 || out.Cold != (r.InitUs > 0) {
		t.Errorf("report: duration %d µs (want ≥ the 50 ms timeout), init %d µs with cold %v", r.DurationUs, r.InitUs, out.Cold)
	}
	// Two at once, after the timeout retired the instance: each cold
	// start's report has the instance start's duration.
	outs := make(chan *system.Outcome, 2)
	for range 2 {
		go func() {
			o, _ := s.Invoke(ctx, system.Invocation{Function: "spin"})
			outs <- o
		}()
	}
	cold := 0
	for range 2 {
		o := <-outs
		if o == nil || !o.Cold {
			continue
		}
		cold++
		ls, _ := s.Logs.Tail(logs.Query{Function: "spin", Invocation: o.ID})
		if len(ls) != 1 || ls[0].Report.InitUs <= 0 {
			t.Errorf("a cold start's report: got %+v, want init_us > 0", ls)
		}
	}
	if cold == 0 {
		t.Error("neither of two concurrent invocations was cold")
	}
}
