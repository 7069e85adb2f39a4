package wasm

import (
	"bytes"
	"context"
	"errors"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// Raw encoders for modules with any sections, as the rewriter sees them.

func u(v uint64) []byte { return appendULEB(nil, v) }

func appendULEB(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// vec is a wasm vector: a count, then the items.
func vec(items ...[]byte) []byte { return cat(u(uint64(len(items))), cat(items...)) }

func str(s string) []byte { return cat(u(uint64(len(s))), []byte(s)) }

func sec(id byte, parts ...[]byte) []byte {
	body := cat(parts...)
	return cat([]byte{id}, u(uint64(len(body))), body)
}

func module(sections ...[]byte) []byte {
	return cat([]byte{0, 'a', 's', 'm', 1, 0, 0, 0}, cat(sections...))
}

// fn is one code-section entry: locals (raw, already a vector) and
// instructions, closed with end.
func fn(locals []byte, instrs ...[]byte) []byte {
	body := cat(locals, cat(instrs...), []byte{0x0b})
	return cat(u(uint64(len(body))), body)
}

var noLocals = []byte{0}

func funcType(params, results []byte) []byte {
	return cat([]byte{0x60}, u(uint64(len(params))), params, u(uint64(len(results))), results)
}

// stopCheck is the check the rewriter inserts for a stop global at idx
// (and its fuel global after it).
func stopCheck(idx byte) []byte { return checkCode(uint64(idx), uint64(idx)+1) }

// The kitchen sink: one function using every kind of immediate the
// rewriter decodes and wazero runs by default, with loops in blocks, ifs,
// under br_table, nested, and typed by a type index.
var (
	sinkTypes = sec(secType, vec(
		funcType([]byte{tI32}, []byte{tI32}),             // 0: f
		funcType(nil, []byte{tI32}),                      // 1: seven
		funcType([]byte{tI32, tI32}, []byte{tI32, tI32}), // 2: a block type
		funcType(nil, nil),                               // 3: spin
	))
	sinkFuncs = sec(secFunction, vec(u(0), u(1), u(3), u(0)))
	sinkBody  = cat(
		// Sum x..1 into local 1.
		[]byte{0x02, 0x40, 0x03, 0x40, 0x20, 0x00, 0x45, 0x0d, 0x01},
		[]byte{0x20, 0x01, 0x20, 0x00, 0x6a, 0x21, 0x01, 0x20, 0x00, 0x41, 0x01, 0x6b, 0x21, 0x00, 0x0c, 0x00, 0x0b, 0x0b},
		// i64.const, wrap.
		[]byte{0x20, 0x01, 0x42}, sleb(nil, -123456789012), []byte{0xa7, 0x6a, 0x21, 0x01},
		// f32.const, saturating truncation; f64.const, truncation.
		[]byte{0x43, 0x00, 0x00, 0xc0, 0x3f, 0xfc, 0x00, 0x20, 0x01, 0x6a, 0x21, 0x01},
		[]byte{0x44, 0, 0, 0, 0, 0, 0, 0x02, 0x40, 0xaa, 0x20, 0x01, 0x6a, 0x21, 0x01},
		// Store and load with memargs.
		[]byte{0x41, 0xc8, 0x01, 0x20, 0x01, 0x36, 0x02, 0x04},
		[]byte{0x41, 0xc8, 0x01, 0x2d, 0x00, 0x04, 0x20, 0x01, 0x6a, 0x21, 0x01},
		// memory.size, memory.grow 0.
		[]byte{0x3f, 0x00, 0x41, 0x00, 0x40, 0x00, 0x6a, 0x20, 0x01, 0x6a, 0x21, 0x01},
		// call, call_indirect (type 1, table 0).
		[]byte{0x10, 0x01, 0x41, 0x01, 0x11, 0x01, 0x00, 0x6a, 0x20, 0x01, 0x6a, 0x21, 0x01},
		// select, typed select, local.tee.
		[]byte{0x41, 0x05, 0x41, 0x06, 0x20, 0x00, 0x1b, 0x41, 0x08, 0x41, 0x09, 0x20, 0x01, 0x1c, 0x01, 0x7f, 0x6a},
		[]byte{0x22, 0x01, 0x1a},
		// global.get/set, sign extension.
		[]byte{0x23, 0x00, 0x41, 0x01, 0x6a, 0x24, 0x00, 0x41, 0x80, 0x01, 0xc0, 0x23, 0x00, 0x6a, 0x20, 0x01, 0x6a, 0x21, 0x01},
		// memory.fill, memory.copy, memory.init, data.drop.
		[]byte{0x41, 0xac, 0x02, 0x41, 0x07, 0x41, 0x0a, 0xfc, 0x0b, 0x00},
		[]byte{0x41, 0x90, 0x03, 0x41, 0xac, 0x02, 0x41, 0x0a, 0xfc, 0x0a, 0x00, 0x00},
		[]byte{0x41, 0xf4, 0x03, 0x41, 0x00, 0x41, 0x03, 0xfc, 0x08, 0x01, 0x00, 0xfc, 0x09, 0x01},
		[]byte{0x41, 0xf4, 0x03, 0x28, 0x02, 0x00, 0x41, 0x90, 0x03, 0x28, 0x02, 0x00, 0x6a, 0x20, 0x01, 0x6a, 0x21, 0x01},
		// table.size, table.grow (ref.null), table.fill (ref.func),
		// table.get, ref.is_null, table.set.
		[]byte{0xfc, 0x10, 0x00, 0xd0, 0x70, 0x41, 0x01, 0xfc, 0x0f, 0x00, 0x6a, 0x20, 0x01, 0x6a, 0x21, 0x01},
		[]byte{0x41, 0x02, 0xd2, 0x00, 0x41, 0x01, 0xfc, 0x11, 0x00},
		[]byte{0x41, 0x03, 0x25, 0x00, 0xd1, 0x20, 0x01, 0x6a, 0x21, 0x01},
		[]byte{0x41, 0x03, 0xd2, 0x01, 0x26, 0x00},
		// table.init, elem.drop, table.copy.
		[]byte{0x41, 0x00, 0x41, 0x00, 0x41, 0x01, 0xfc, 0x0c, 0x01, 0x00, 0xfc, 0x0d, 0x01},
		[]byte{0x41, 0x01, 0x41, 0x00, 0x41, 0x01, 0xfc, 0x0e, 0x00, 0x00},
		// A loop and a block typed by a type index (s33).
		[]byte{0x41, 0x01, 0x41, 0x02, 0x03, 0x02, 0x0b, 0x02, 0x02, 0x0b, 0x6a, 0x20, 0x01, 0x6a, 0x21, 0x01},
		// if/else with a result, a loop inside each arm.
		[]byte{0x20, 0x00, 0x04, 0x7f, 0x03, 0x7f, 0x41, 0x01, 0x0b, 0x05, 0x03, 0x7f, 0x41, 0x02, 0x0b, 0x0b},
		[]byte{0x20, 0x01, 0x6a, 0x21, 0x01},
		// br_table inside nested loops: 3 outer × 4 inner rounds.
		[]byte{0x41, 0x03, 0x21, 0x00, 0x03, 0x40, 0x41, 0x04, 0x21, 0x02, 0x03, 0x40},
		[]byte{0x02, 0x40, 0x02, 0x40, 0x02, 0x40, 0x20, 0x02, 0x41, 0x03, 0x70, 0x0e, 0x02, 0x00, 0x01, 0x02, 0x0b},
		[]byte{0x20, 0x01, 0x41, 0x01, 0x6a, 0x21, 0x01, 0x0b, 0x20, 0x01, 0x41, 0x0a, 0x6a, 0x21, 0x01, 0x0b},
		[]byte{0x20, 0x02, 0x41, 0x01, 0x6b, 0x22, 0x02, 0x0d, 0x00, 0x0b},
		[]byte{0x20, 0x00, 0x41, 0x01, 0x6b, 0x22, 0x00, 0x0d, 0x00, 0x0b},
		// SIMD: v128.const, shuffle, extract lane, store, load, add,
		// load lane.
		cat([]byte{0x41, 0xd8, 0x04, 0xfd, 0x0c}, bytes.Repeat([]byte{3}, 16), []byte{0xfd, 0x0b, 0x04, 0x00}),
		cat([]byte{0xfd, 0x0c}, bytes.Repeat([]byte{1}, 16), []byte{0xfd, 0x0c}, bytes.Repeat([]byte{2}, 16)),
		cat([]byte{0xfd, 0x0d}, []byte{0, 17, 2, 19, 4, 21, 6, 23, 8, 25, 10, 27, 12, 29, 14, 31}),
		[]byte{0x41, 0xd8, 0x04, 0xfd, 0x00, 0x04, 0x00, 0xfd, 0xae, 0x01, 0x21, 0x03},
		[]byte{0x41, 0xd8, 0x04, 0x20, 0x03, 0xfd, 0x56, 0x02, 0x00, 0x01, 0xfd, 0x1b, 0x01},
		[]byte{0x20, 0x03, 0xfd, 0x1b, 0x00, 0x6a, 0x20, 0x01, 0x6a, 0x21, 0x01},
		[]byte{0x20, 0x01, 0x0f},
	)
	sinkCode = sec(secCode, vec(
		fn(cat(u(3), u(2), []byte{tI32}, u(1), []byte{0x7b}, u(1), []byte{tI64}), sinkBody),
		fn(noLocals, []byte{0x41, 0x07}),
		fn(noLocals, []byte{0x03, 0x40, 0x0c, 0x00, 0x0b}),
		// rec: x > 0 ? rec(x-1) + 1 : 0, no loop at all.
		fn(noLocals, []byte{0x20, 0x00, 0x04, 0x7f, 0x20, 0x00, 0x41, 0x01, 0x6b, 0x10, 0x03, 0x41, 0x01, 0x6a, 0x05, 0x41, 0x00, 0x0b}),
	))
	sinkTable   = sec(secTable, vec([]byte{0x70, 0x00, 0x04}))
	sinkMemory  = sec(secMemory, vec([]byte{0x00, 0x01}))
	sinkGlobals = sec(secGlobal, vec([]byte{tI32, 0x01, 0x41, 0x2a, 0x0b}))
	sinkExports = sec(secExport, vec(
		cat(str("f"), []byte{0x00}, u(0)), cat(str("spin"), []byte{0x00}, u(2)), cat(str("rec"), []byte{0x00}, u(3)),
		cat(str("memory"), []byte{0x02}, u(0)),
	))
	sinkElems = sec(secElement, vec(
		cat([]byte{0x00, 0x41, 0x00, 0x0b}, vec(u(1), u(1))), // active, table 0 at 0: seven seven
		cat([]byte{0x01, 0x00}, vec(u(1))),                   // passive, funcref: seven
	))
	sinkDataCount = sec(secDataCount, u(2))
	sinkData      = sec(secData, vec(
		cat([]byte{0x00, 0x41, 0x10, 0x0b}, str("hello")),
		cat([]byte{0x01}, str("abc")),
	))
	sinkName = sec(secCustom, str("name"), []byte{0x01}, u(uint64(len(vec(cat(u(0), str("f")))))), vec(cat(u(0), str("f"))))

	sinkModule = module(sinkTypes, sinkFuncs, sinkTable, sinkMemory, sinkGlobals, sinkExports, sinkElems,
		sinkDataCount, sinkCode, sinkData, sinkName)
)

// loopFunc returns a ()->(i32) function body: a loop counting to n.
func loopFunc(n byte) []byte {
	return fn(cat(u(1), u(1), []byte{tI32}),
		[]byte{0x03, 0x40, 0x20, 0x00, 0x41, 0x01, 0x6a, 0x22, 0x00, 0x41, n, 0x49, 0x0d, 0x00, 0x0b, 0x20, 0x00})
}

// mem1 is a memory section of one page.
var mem1 = sec(secMemory, vec([]byte{0x00, 0x01}))

func TestInstrument(t *testing.T) {
	countType := sec(secType, vec(funcType(nil, []byte{tI32})))
	tests := []struct {
		name       string
		bin        []byte
		wantStop   string
		stopIdx    byte           // the stop global's index
		wantChecks int            // inserted checks: functions + loops
		funcs      map[string]int // exported functions to run: name → argument
		stopped    string         // an exported function to run until the stop global stops it
		imports    bool           // needs the env module of importedGlobals
	}{
		{
			name:       "kitchen sink",
			bin:        sinkModule,
			wantStop:   "mote.stop",
			stopIdx:    1,
			wantChecks: 4 + 7, // 4 functions; loops: sum, typed, if and else arms, br_table's two, spin
			funcs:      map[string]int{"f": 5, "rec": 50},
			stopped:    "rec",
		},
		{
			name:       "no global or export section",
			bin:        module(countType, sec(secFunction, vec(u(0))), mem1, sec(secCode, vec(loopFunc(10)))),
			wantStop:   "mote.stop",
			wantChecks: 2,
			funcs:      map[string]int{},
		},
		{
			name: "name taken, custom sections first and last",
			bin: module(sec(secCustom, str("first"), []byte("x")), countType, sec(secFunction, vec(u(0))), mem1,
				sec(secExport, vec(cat(str("mote.stop"), []byte{0x00}, u(0)), cat(str("mote.stop.1"), []byte{0x00}, u(0)))),
				sec(secCode, vec(loopFunc(10))), sec(secCustom, str("last"), []byte("y"))),
			wantStop:   "mote.stop.2",
			wantChecks: 2,
			funcs:      map[string]int{"mote.stop": 0},
			stopped:    "mote.stop",
		},
		{
			name: "imported globals",
			bin: module(sec(secType, vec(funcType(nil, []byte{tI32}))),
				sec(secImport, vec(
					cat(str("env"), str("f"), []byte{importFunc}, u(0)),
					cat(str("env"), str("a"), []byte{importGlobal, tI32, 0x00}),
					cat(str("env"), str("b"), []byte{importGlobal, tI64, 0x00}),
					cat(str("env"), str("mem"), []byte{importMemory, 0x00, 0x01}),
				)),
				sec(secFunction, vec(u(0))),
				sec(secGlobal, vec([]byte{tI32, 0x00, 0x23, 0x00, 0x0b})), // = env.a
				sec(secExport, vec(cat(str("g"), []byte{0x00}, u(1)))),
				sec(secCode, vec(fn(noLocals, []byte{0x03, 0x7f, 0x23, 0x02, 0x23, 0x00, 0x6a, 0x10, 0x00, 0x6a, 0x0b})))),
			wantStop:   "mote.stop",
			stopIdx:    3,
			wantChecks: 2,
			funcs:      map[string]int{"g": 0},
			stopped:    "g",
			imports:    true,
		},
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	defer rt.Close(ctx)
	env := module(sec(secType, vec(funcType(nil, []byte{tI32}))), sec(secFunction, vec(u(0))), mem1,
		sec(secGlobal, vec([]byte{tI32, 0x00, 0x41, 0x0b, 0x0b}, []byte{tI64, 0x00, 0x42, 0x01, 0x0b})),
		sec(secExport, vec(cat(str("f"), []byte{0x00}, u(0)), cat(str("a"), []byte{importGlobal}, u(0)), cat(str("b"), []byte{importGlobal}, u(1)),
			cat(str("mem"), []byte{importMemory}, u(0)))),
		sec(secCode, vec(fn(noLocals, []byte{0x41, 0x64}))))
	if _, err := rt.InstantiateWithConfig(ctx, env, wazero.NewModuleConfig().WithName("env")); err != nil {
		t.Fatalf("env module: %v", err)
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := instantiateTest(t, rt, tt.bin)
			ins, err := instrument(tt.bin)
			if err != nil {
				t.Fatalf("instrument: %v", err)
			}
			if ins.stopName != tt.wantStop {
				t.Errorf("stop name %q, want %q", ins.stopName, tt.wantStop)
			}
			got := instantiateTest(t, rt, ins.bin)
			if n := bytes.Count(ins.bin, stopCheck(tt.stopIdx)); n != tt.wantChecks {
				t.Errorf("%d checks inserted, want %d", n, tt.wantChecks)
			}
			for name, arg := range tt.funcs {
				want, err := callTest(ctx, orig, name, arg)
				if err != nil {
					t.Fatalf("original %s: %v", name, err)
				}
				res, err := callTest(ctx, got, name, arg)
				if err != nil || !equalU64(res, want) {
					t.Errorf("instrumented %s(%d) = %v, %v; want %v", name, arg, res, err, want)
				}
			}
			// Once the stop global is set, the function traps within
			// yieldEvery checks (each call passes at least one).
			if tt.stopped == "" {
				return
			}
			got.ExportedGlobal(ins.stopName).(api.MutableGlobal).Set(1)
			for range yieldEvery + 1 {
				if _, err = callTest(ctx, got, tt.stopped, 1); err != nil {
					break
				}
			}
			if err == nil || !strings.Contains(err.Error(), "unreachable") {
				t.Errorf("%s with the stop global set: %v, want an unreachable trap", tt.stopped, err)
			}
		})
	}
}

// callTest calls an exported function with arg if it takes one.
func callTest(ctx context.Context, m api.Module, name string, arg int) ([]uint64, error) {
	f := m.ExportedFunction(name)
	if len(f.Definition().ParamTypes()) == 0 {
		return f.Call(ctx)
	}
	return f.Call(ctx, uint64(arg))
}

func equalU64(a, b []uint64) bool { return bytes.Equal(u64Bytes(a), u64Bytes(b)) }

func u64Bytes(v []uint64) []byte {
	var b []byte
	for _, x := range v {
		b = appendULEB(b, x)
	}
	return b
}

func instantiateTest(t *testing.T, rt wazero.Runtime, bin []byte) api.Module {
	t.Helper()
	ctx := context.Background()
	c, err := rt.CompileModule(ctx, bin)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	m, err := rt.InstantiateModule(ctx, c, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	t.Cleanup(func() { m.Close(ctx) })
	return m
}

// A loop that is already running lets the garbage collector stop the
// world (a guest that never yielded would freeze the process here), and
// stops when its stop global is set from another goroutine.
func TestInstrumentStopsRunningLoop(t *testing.T) {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	defer rt.Close(ctx)
	ins, err := instrument(sinkModule)
	if err != nil {
		t.Fatal(err)
	}
	m := instantiateTest(t, rt, ins.bin)
	done := make(chan error, 1)
	go func() {
		_, err := m.ExportedFunction("spin").Call(ctx)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	for range 3 {
		goruntime.GC()
	}
	m.ExportedGlobal(ins.stopName).(api.MutableGlobal).Set(1)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Errorf("spin: %v, want an unreachable trap", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("spin was not stopped")
	}
}

// instrumentBody inserts the check after the locals and after each loop's
// block type, whatever precedes it, and copies everything else.
func TestInstrumentBody(t *testing.T) {
	chk := stopCheck(9)
	tests := []struct {
		name string
		body []byte // locals and instructions, with the final end
		want []byte
	}{
		{"empty", []byte{0x00, 0x0b}, cat([]byte{0x00}, chk, []byte{0x0b})},
		{"locals", []byte{0x02, 0x01, 0x7f, 0x03, 0x7b, 0x0b}, cat([]byte{0x02, 0x01, 0x7f, 0x03, 0x7b}, chk, []byte{0x0b})},
		{"nested loops", []byte{0x00, 0x03, 0x40, 0x03, 0x7f, 0x41, 0x01, 0x0b, 0x1a, 0x0b, 0x0b},
			cat([]byte{0x00}, chk, []byte{0x03, 0x40}, chk, []byte{0x03, 0x7f}, chk, []byte{0x41, 0x01, 0x0b, 0x1a, 0x0b, 0x0b})},
		{"loop typed by a multi-byte type index", []byte{0x00, 0x03, 0x80, 0x01, 0x0b, 0x0b},
			cat([]byte{0x00}, chk, []byte{0x03, 0x80, 0x01}, chk, []byte{0x0b, 0x0b})},
		{"loop bytes inside immediates are not loops", []byte{0x00, 0x41, 0x03, 0x1a, 0x42, 0x03, 0x1a, 0x43, 0x03, 0x03, 0x03, 0x03, 0x1a,
			0xfd, 0x0c, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0x1a, 0x0b},
			cat([]byte{0x00}, chk, []byte{0x41, 0x03, 0x1a, 0x42, 0x03, 0x1a, 0x43, 0x03, 0x03, 0x03, 0x03, 0x1a,
				0xfd, 0x0c, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0x1a, 0x0b})},
		{"atomics", []byte{0x00, 0x03, 0x40, 0x41, 0x00, 0xfe, 0x10, 0x02, 0x03, 0x1a, 0xfe, 0x03, 0x00, 0x0b, 0x0b},
			cat([]byte{0x00}, chk, []byte{0x03, 0x40}, chk, []byte{0x41, 0x00, 0xfe, 0x10, 0x02, 0x03, 0x1a, 0xfe, 0x03, 0x00, 0x0b, 0x0b})},
		{"br_table", []byte{0x00, 0x02, 0x40, 0x41, 0x00, 0x0e, 0x03, 0x00, 0x03, 0x00, 0x03, 0x0b, 0x03, 0x40, 0x0b, 0x0b},
			cat([]byte{0x00}, chk, []byte{0x02, 0x40, 0x41, 0x00, 0x0e, 0x03, 0x00, 0x03, 0x00, 0x03, 0x0b, 0x03, 0x40}, chk, []byte{0x0b, 0x0b})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := instrumentBody(nil, tt.body, chk)
			if err != nil {
				t.Fatalf("instrumentBody: %v", err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("got  % x\nwant % x", got, tt.want)
			}
		})
	}
}

// What the rewriter does not know, it refuses, so the module falls back to
// wazero's own stopping.
func TestInstrumentRefuses(t *testing.T) {
	withBody := func(instrs ...byte) []byte {
		return module(sec(secType, vec(funcType(nil, nil))), sec(secFunction, vec(u(0))), mem1,
			sec(secCode, vec(fn(noLocals, instrs))))
	}
	tests := []struct {
		name string
		bin  []byte
	}{
		{"not wasm", []byte("not wasm at all")},
		{"version 2", []byte{0, 'a', 's', 'm', 2, 0, 0, 0}},
		{"truncated section", sinkModule[:len(sinkModule)-3]},
		{"unknown section", module(sec(14, []byte{0}))},
		{"sections out of order", module(sec(secFunction, vec()), sec(secType, vec()))},
		{"repeated section", module(sec(secType, vec()), sec(secType, vec()))},
		{"legacy try", withBody(0x06, 0x40, 0x0b)},
		{"throw", withBody(0x08, 0x00)},
		{"try_table", withBody(0x1f, 0x40, 0x00, 0x0b)},
		{"call_ref", withBody(0x14, 0x00)},
		{"GC prefix", withBody(0xfb, 0x00)},
		{"unknown 0xfc", withBody(0xfc, 0x12)},
		{"SIMD hole", withBody(0xfd, 0x9a, 0x01)},
		{"relaxed SIMD", withBody(0xfd, 0x80, 0x02)},
		{"unknown 0xfe", withBody(0xfe, 0x04)},
		{"multi-memory memarg", withBody(0x41, 0x00, 0x28, 0x42, 0x01, 0x00, 0x1a)},
		{"unknown block type", withBody(0x02, 0x60, 0x0b)},
		{"typed select of two", withBody(0x1c, 0x02, 0x7f, 0x7f)},
		{"no memory", module(sec(secType, vec(funcType(nil, nil))), sec(secFunction, vec(u(0))), sec(secCode, vec(fn(noLocals))))},
		{"body without end", module(sec(secType, vec(funcType(nil, nil))), sec(secFunction, vec(u(0))), mem1,
			sec(secCode, vec(cat(u(2), []byte{0x00, 0x01}))))},
		{"bytes after end", module(sec(secType, vec(funcType(nil, nil))), sec(secFunction, vec(u(0))), mem1,
			sec(secCode, vec(cat(u(3), []byte{0x00, 0x0b, 0x01}))))},
		{"overlong u32", withBody(0x20, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00)},
		{"import of an unknown kind", module(sec(secImport, vec(cat(str("a"), str("b"), []byte{0x09}))))},
		{"imported global of a GC type", module(sec(secImport, vec(cat(str("a"), str("b"), []byte{importGlobal, 0x63, 0x70, 0x00}))))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := instrument(tt.bin)
			if !errors.Is(err, errUninstrumentable) {
				t.Errorf("instrument: got %v, want errUninstrumentable", err)
			}
		})
	}
}

// Missing global and export sections are created in their places: after
// the import/function/table/memory sections, before the code.
func TestInstrumentSectionOrder(t *testing.T) {
	tests := []struct {
		name string
		bin  []byte
		want []byte // section ids of the result
	}{
		{"minimal", module(mem1), []byte{secMemory, secGlobal, secExport}},
		{"functions", module(sec(secType, vec(funcType(nil, nil))), sec(secFunction, vec(u(0))), mem1,
			sec(secCode, vec(fn(noLocals)))), []byte{secType, secFunction, secMemory, secGlobal, secExport, secCode}},
		{"custom before code", module(sec(secType, vec(funcType(nil, nil))), sec(secFunction, vec(u(0))), mem1,
			sec(secCustom, str("c")), sec(secDataCount, u(0)), sec(secCode, vec(fn(noLocals))), sec(secData, vec())),
			[]byte{secType, secFunction, secMemory, secCustom, secGlobal, secExport, secDataCount, secCode, secData}},
		{"global only, memory imported", module(sec(secImport, vec(cat(str("a"), str("m"), []byte{importMemory, 0x00, 0x00}))),
			sec(secGlobal, vec()), sec(secStart, u(0))), []byte{secImport, secGlobal, secExport, secStart}},
		{"export only", module(sec(secMemory, vec([]byte{0, 1})), sec(secExport, vec())),
			[]byte{secMemory, secGlobal, secExport}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ins, err := instrument(tt.bin)
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			c := cursor{b: ins.bin, pos: 8}
			for !c.done() {
				got = append(got, c.byte())
				c.take(int(c.u32()))
			}
			if c.err != nil || !bytes.Equal(got, tt.want) {
				t.Errorf("sections %v (%v), want %v", got, c.err, tt.want)
			}
		})
	}
}
