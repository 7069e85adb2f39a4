package wasm

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/host"
	"github.com/mote-run/mote/internal/runtime"
)

// hostModule is the import module name of Mote's host functions.
const hostModule = "mote"

// guest is the host-side state of one module instance: the invocation it is
// serving and the buffers its host calls reuse. The host functions find it
// in the context wazero hands them; it is only touched from the goroutine
// running the instance, so it needs no lock.
type guest struct {
	function string
	log      *slog.Logger

	ev  *runtime.Event  // the invocation in progress; nil between them
	ctx context.Context // its context, for output written outside host calls

	meta    []byte   // encoded metadata of ev (mote.event writes it)
	args    [][]byte // host-call arguments, reused
	logArg  [1][]byte
	errBuf  []byte // an encoded host-call error, reused
	pending []byte // a result too big for the guest's buffer, until mote.take

	failed  bool   // the handler reported failure (mote.fail)
	fatal   bool   // ... and the instance must be retired (a panic)
	failMsg string // ... with this message

	ops map[string]string // interned op names, so a call allocates none
	// opSlots remembers the op names of recent calls by where the guest
	// keeps them (an SDK passes string constants, which never move), so
	// a repeat op costs a short compare instead of a map lookup.
	opSlots [16]string

	stdout, stderr logWriter
	alloc          memoryAllocator

	// nested is the thread CPU of wasm invocations this one called
	// synchronously (nested.go).
	nested nestedCPU

	sleepFn func(ns int64) // sleep, made once

	// record, while an initialisation that may become a snapshot runs,
	// collects what it writes (see snapshot.go).
	record *[]initLine
}

func newGuest(function string, log *slog.Logger, limit uint64) *guest {
	g := &guest{function: function, log: log, ops: make(map[string]string)}
	g.stdout = logWriter{g: g, stream: "stdout"}
	g.stderr = logWriter{g: g, stream: "stderr"}
	g.alloc.limit = limit
	g.sleepFn = g.sleep
	return g
}

// sleep is the guest's WASI sleep (poll_oneoff on a clock, which is how a
// Go guest's time.Sleep and idle scheduler wait). wazero's own sleep
// ignores the context, so a guest sleeping past its deadline would hold
// its invocation until it woke, even with close-on-context-done; this one
// wakes when the invocation ends and traps, so the invocation ends then
// whether or not the guest would loop again. It runs on the guest's
// goroutine, so reading g.ctx needs no lock.
func (g *guest) sleep(ns int64) {
	ctx := g.ctx
	if ctx == nil {
		time.Sleep(time.Duration(ns))
		return
	}
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		panic(errSleepInterrupted) // guestError tells why from ctx
	}
}

var errSleepInterrupted = errors.New("wasm: sleep interrupted: the invocation ended")

// withGuest marks ctx with the guest running under it. The mark is
// runtime.WithCaller's, so one context value serves both host functions
// (which guest is calling) and nested invocations (which invocation called
// them, nested.go).
func withGuest(ctx context.Context, g *guest) context.Context {
	return runtime.WithCaller(ctx, g)
}

func guestFrom(ctx context.Context) *guest {
	g, _ := runtime.CallerOf(ctx).(*guest)
	return g
}

// begin binds g to an invocation; end unbinds it.
func (g *guest) begin(ctx context.Context, ev *runtime.Event) {
	g.ev, g.ctx = ev, ctx
	g.failed, g.fatal, g.failMsg = false, false, ""
	g.pending = nil
	g.nested.reset()
	g.stderr.reset()
	g.stdout.reset()

	// The layout is the ABI's (docs/host-api.md): fixed-size fields the
	// guest reads without loops, then the ids.
	le := binary.LittleEndian
	m := le.AppendUint64(g.meta[:0], uint64(ev.Deadline.UnixNano()))
	m = le.AppendUint32(m, uint32(ev.Depth))
	m = le.AppendUint32(m, uint32(len(ev.ID)))
	m = le.AppendUint32(m, uint32(len(ev.Root)))
	m = le.AppendUint32(m, uint32(len(ev.Parent)))
	m = append(m, ev.ID...)
	m = append(m, ev.Root...)
	g.meta = append(m, ev.Parent...)
}

func (g *guest) end() {
	g.stdout.flush()
	g.stderr.flush()
	g.ev, g.ctx, g.pending = nil, nil, nil
}

// call serves one host call. args alias guest memory.
func (g *guest) call(ctx context.Context, op string, args [][]byte) ([]byte, error) {
	if g.ev == nil {
		return nil, errs.E(errs.Unavailable, "host calls are not available while the function initialises")
	}
	return g.ev.Host.Call(ctx, op, args)
}

// logLine sends one line of guest output to the function's log.
func (g *guest) logLine(ctx context.Context, stream string, line []byte) {
	if g.ev == nil {
		if g.record != nil {
			*g.record = append(*g.record, initLine{stream: stream, line: append([]byte(nil), line...)})
		}
		g.log.Info("guest output", "fn", g.function, "stream", stream, "line", string(line))
		return
	}
	g.logArg[0] = line
	if _, err := g.ev.Host.Call(ctx, host.OpLog, g.logArg[:]); err != nil {
		g.log.Debug("log host call failed", "fn", g.function, "err", err)
	}
	g.logArg[0] = nil
}

// intern returns op as a string without allocating for ops seen before.
// ptr is where the guest keeps op: it picks the slot of opSlots to try
// first. The slot's content is compared, never trusted, so a guest that
// rewrites its memory only loses the shortcut.
func (g *guest) intern(ptr uint32, op []byte) string {
	slot := &g.opSlots[(ptr^ptr>>4)%uint32(len(g.opSlots))]
	if *slot == string(op) {
		return *slot
	}
	s := g.internSlow(op)
	*slot = s
	return s
}

func (g *guest) internSlow(op []byte) string {
	if s, ok := g.ops[string(op)]; ok {
		return s
	}
	s := string(op)
	if len(g.ops) < 256 { // a guest inventing op names cannot grow this forever
		g.ops[s] = s
	}
	return s
}

// parseArgs decodes the host-call argument encoding (host.ParseArgs's)
// into g.args without allocating once g.args has grown.
func (g *guest) parseArgs(b []byte) ([][]byte, bool) {
	args := g.args[:0]
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, false
		}
		args = append(args, b[k:k+int(n)])
		b = b[k+int(n):]
	}
	g.args = args
	return args, true
}

// maxArgv bounds the argument count of one callv, so a guest cannot make
// the host walk a huge vector; the ops with variable arity (kv.batch,
// queue.push) pass a few per item and stay far below it.
const maxArgv = 1 << 16

// readArgv returns the argc arguments that the (ptr, len) pairs at argv
// in mem point to, in g.args, aliasing guest memory. ok is false if any
// of them lies outside memory.
func (g *guest) readArgv(mem api.Memory, argv, argc uint32) ([][]byte, bool) {
	if argc > maxArgv {
		return nil, false
	}
	vec, ok := mem.Read(argv, argc*8)
	if !ok {
		return nil, false
	}
	le := binary.LittleEndian
	args := g.args[:0]
	for len(vec) >= 8 {
		a, ok := mem.Read(le.Uint32(vec), le.Uint32(vec[4:]))
		if !ok {
			g.args = args
			return nil, false
		}
		args = append(args, a)
		vec = vec[8:]
	}
	g.args = args
	return args, true
}

// The host functions: signatures are the ABI (docs/host-api.md).
var hostFuncs = []struct {
	name    string
	fn      api.GoModuleFunc
	params  []api.ValueType
	results []api.ValueType
}{
	{"call", hostCall, []api.ValueType{i32, i32, i32, i32, i32, i32}, []api.ValueType{i64}},
	{"callv", hostCallV, []api.ValueType{i32, i32, i32, i32, i32, i32}, []api.ValueType{i64}},
	{"take", hostTake, []api.ValueType{i32}, nil},
	{"event", hostEvent, []api.ValueType{i32}, nil},
	{"fail", hostFail, []api.ValueType{i32, i32, i32}, nil},
	{"log", hostLog, []api.ValueType{i32, i32}, nil},
}

const (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// instantiateHostModule defines the "mote" module in r.
func instantiateHostModule(ctx context.Context, r wazero.Runtime) error {
	b := r.NewHostModuleBuilder(hostModule)
	for _, f := range hostFuncs {
		b.NewFunctionBuilder().WithGoModuleFunction(f.fn, f.params, f.results).Export(f.name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

// trap stops the guest: wazero turns a panic in a host function into a
// trap error returned from the guest's call.
func trap(msg string) { panic(errs.E(errs.FunctionError, "%s", msg)) }

// hostCall: call(opPtr, opLen, argsPtr, argsLen, outPtr, outCap) -> i64,
// the arguments encoded in one buffer (host.AppendArgs).
func hostCall(ctx context.Context, mod api.Module, stack []uint64) {
	g := guestFrom(ctx)
	mem := mod.Memory()
	op, ok1 := mem.Read(uint32(stack[0]), uint32(stack[1]))
	rawArgs, ok2 := mem.Read(uint32(stack[2]), uint32(stack[3]))

	var res []byte
	var err error
	if !ok1 || !ok2 {
		err = errs.E(errs.BadRequest, "host call: op or arguments outside the module's memory")
	} else if args, ok := g.parseArgs(rawArgs); !ok {
		err = errs.E(errs.BadRequest, "host: malformed argument list")
	} else {
		res, err = g.call(ctx, g.intern(uint32(stack[0]), op), args)
		clear(g.args) // drop references into guest memory and host results
	}
	stack[0] = g.reply(mem, res, err, uint32(stack[4]), uint32(stack[5]))
}

// hostCallV: callv(opPtr, opLen, argv, argc, outPtr, outCap) -> i64, the
// arguments passed in place as argc (ptr u32, len u32) pairs at argv: the
// guest copies and encodes nothing, the host parses nothing.
func hostCallV(ctx context.Context, mod api.Module, stack []uint64) {
	g := guestFrom(ctx)
	mem := mod.Memory()
	op, ok := mem.Read(uint32(stack[0]), uint32(stack[1]))

	var res []byte
	var err error
	if !ok {
		err = errs.E(errs.BadRequest, "host call: op outside the module's memory")
	} else if args, ok := g.readArgv(mem, uint32(stack[2]), uint32(stack[3])); !ok {
		err = errs.E(errs.BadRequest, "host call: argument vector or an argument outside the module's memory, or more than %d arguments", maxArgv)
	} else {
		res, err = g.call(ctx, g.intern(uint32(stack[0]), op), args)
	}
	clear(g.args) // drop references into guest memory and host results
	stack[0] = g.reply(mem, res, err, uint32(stack[4]), uint32(stack[5]))
}

// reply hands a host call's result (or err, encoded) to the guest: it is
// written at outPtr if it fits in outCap bytes, otherwise kept for
// mote.take. It returns the call's return value: the length, negated for
// an error.
func (g *guest) reply(mem api.Memory, res []byte, err error, outPtr, outCap uint32) uint64 {
	sign := int64(1)
	if err != nil {
		g.errBuf = host.AppendArgs(g.errBuf[:0], []byte(errs.CodeOf(err)), []byte(errs.MessageOf(err)))
		res, sign = g.errBuf, -1
	}
	if uint64(len(res)) <= uint64(outCap) {
		if !mem.Write(outPtr, res) {
			trap("host call: result buffer outside the module's memory")
		}
	} else {
		g.pending = res
	}
	return uint64(sign * int64(len(res)))
}

// hostTake: take(dst) copies the pending result of the last call to dst.
func hostTake(ctx context.Context, mod api.Module, stack []uint64) {
	g := guestFrom(ctx)
	if g.pending == nil {
		trap("mote.take: no pending host-call result")
	}
	if !mod.Memory().Write(uint32(stack[0]), g.pending) {
		trap("mote.take: destination outside the module's memory")
	}
	g.pending = nil
}

// hostEvent: event(dst) writes the invocation's metadata then payload.
func hostEvent(ctx context.Context, mod api.Module, stack []uint64) {
	g := guestFrom(ctx)
	if g.ev == nil {
		trap("mote.event: no invocation in progress")
	}
	dst := uint32(stack[0])
	mem := mod.Memory()
	if !mem.Write(dst, g.meta) || !mem.Write(dst+uint32(len(g.meta)), g.ev.Payload) {
		trap("mote.event: destination outside the module's memory")
	}
}

// hostFail: fail(msgPtr, msgLen, fatal) reports the handler's failure.
func hostFail(ctx context.Context, mod api.Module, stack []uint64) {
	g := guestFrom(ctx)
	msg, ok := mod.Memory().Read(uint32(stack[0]), uint32(stack[1]))
	if !ok {
		trap("mote.fail: message outside the module's memory")
	}
	g.failed, g.fatal, g.failMsg = true, uint32(stack[2]) != 0, string(msg)
}

// hostLog: log(msgPtr, msgLen) writes one line to the function's log.
func hostLog(ctx context.Context, mod api.Module, stack []uint64) {
	g := guestFrom(ctx)
	msg, ok := mod.Memory().Read(uint32(stack[0]), uint32(stack[1]))
	if !ok {
		trap("mote.log: message outside the module's memory")
	}
	g.logLine(ctx, "log", msg)
}
