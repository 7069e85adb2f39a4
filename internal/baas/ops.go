package baas

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"time"
	"unsafe"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/host"
	"github.com/mote-run/mote/internal/store"
)

// Host-call ops served by Call. docs/storage.md gives each op's arguments
// and result. Numbers travel as decimal ASCII; durations as decimal
// milliseconds; "?" marks an optional argument (absent or empty: default);
// a result of several values is encoded like args (host.AppendArgs).
const (
	OpKVGet    = "kv.get"    // [bucket, key] → value
	OpKVGetV   = "kv.getv"   // [bucket, key] → [value, version]
	OpKVPut    = "kv.put"    // [bucket, key, value, ttl_ms?, durability?] → version
	OpKVDelete = "kv.delete" // [bucket, key, durability?] → ""
	OpKVCAS    = "kv.cas"    // [bucket, key, version, value, ttl_ms?, durability?] → version
	OpKVIncr   = "kv.incr"   // [bucket, key, delta?, durability?] → value
	OpKVList   = "kv.list"   // [bucket, prefix?, cursor?, limit?] → [next_cursor, key...]
	OpKVBatch  = "kv.batch"  // [bucket, durability?, (op, key, value)...] → [version...]

	OpObjPut    = "obj.put"    // [bucket, key, data, content_type?] → [size, sha256]
	OpObjGet    = "obj.get"    // [bucket, key, offset?, length?] → data
	OpObjHead   = "obj.head"   // [bucket, key] → [size, sha256, content_type, modified_ms]
	OpObjDelete = "obj.delete" // [bucket, key] → ""
	OpObjList   = "obj.list"   // [bucket, prefix?, cursor?, limit?] → [next_cursor, key...]

	OpEphPut    = "eph.put"    // [key, value, ttl_ms?, durability?] → ""
	OpEphGet    = "eph.get"    // [key] → value
	OpEphDelete = "eph.delete" // [key] → ""
	OpEphList   = "eph.list"   // [prefix?, cursor?, limit?] → [next_cursor, key...]

	OpCounterAdd    = "counter.add"    // [bucket, name, delta?] → value
	OpCounterGet    = "counter.get"    // [bucket, name] → value
	OpBarrierWait   = "barrier.wait"   // [bucket, name, n, timeout_ms] → arrival order
	OpQueuePush     = "queue.push"     // [bucket, name, item, item...] → length
	OpQueuePop      = "queue.pop"      // [bucket, name, timeout_ms?] → item
	OpQueueLen      = "queue.len"      // [bucket, name] → length
	OpSignalPublish = "signal.publish" // [bucket, name, payload?] → woken
	OpSignalWait    = "signal.wait"    // [bucket, name, timeout_ms] → payload
	OpLeaseAcquire  = "lease.acquire"  // [bucket, name, ttl_ms, wait_ms?] → [token, expires_ms]
	OpLeaseRenew    = "lease.renew"    // [bucket, name, token, ttl_ms] → expires_ms
	OpLeaseRelease  = "lease.release"  // [bucket, name, token] → ""

	OpCacheGet    = "cache.get"    // [key] → value
	OpCachePut    = "cache.put"    // [key, value, ttl_ms?] → ""
	OpCacheDelete = "cache.delete" // [key] → ""
)

// opSpec says how to check and run one op. With bucket, args[0] names the
// bucket and the caller needs the access listed before fn runs. The
// arity and the access come from the op's description (host.Ops).
type opSpec struct {
	min, max int // argument count; max < 0: unbounded
	bucket   bool
	need     access
	fn       opFunc
}

type opFunc func(s *Service, ctx context.Context, who Caller, a args) ([]byte, error)

var ops map[string]opSpec

func init() {
	fns := map[string]opFunc{
		OpKVGet:    (*Service).kvGet,
		OpKVGetV:   (*Service).kvGetV,
		OpKVPut:    (*Service).kvPut,
		OpKVDelete: (*Service).kvDelete,
		OpKVCAS:    (*Service).kvCAS,
		OpKVIncr:   (*Service).kvIncr,
		OpKVList:   (*Service).kvList,
		OpKVBatch:  (*Service).kvBatch,

		OpObjPut:    (*Service).objPut,
		OpObjGet:    (*Service).objGet,
		OpObjHead:   (*Service).objHead,
		OpObjDelete: (*Service).objDelete,
		OpObjList:   (*Service).objList,

		OpEphPut:    (*Service).ephPut,
		OpEphGet:    (*Service).ephGet,
		OpEphDelete: (*Service).ephDelete,
		OpEphList:   (*Service).ephList,

		OpCounterAdd:    (*Service).counterAdd,
		OpCounterGet:    (*Service).counterGet,
		OpBarrierWait:   (*Service).barrierWait,
		OpQueuePush:     (*Service).queuePush,
		OpQueuePop:      (*Service).queuePop,
		OpQueueLen:      (*Service).queueLen,
		OpSignalPublish: (*Service).signalPublish,
		OpSignalWait:    (*Service).signalWait,
		OpLeaseAcquire:  (*Service).leaseAcquire,
		OpLeaseRenew:    (*Service).leaseRenew,
		OpLeaseRelease:  (*Service).leaseRelease,

		OpCacheGet:    (*Service).cacheGet,
		OpCachePut:    (*Service).cachePut,
		OpCacheDelete: (*Service).cacheDelete,
	}
	ops = make(map[string]opSpec, len(fns))
	for name, fn := range fns {
		d, ok := host.Describe(name)
		if !ok {
			panic("baas: op " + name + " is not described in host.Ops")
		}
		spec := opSpec{fn: fn, bucket: d.Access.Bucket()}
		spec.min, spec.max = d.Arity()
		switch d.Access {
		case host.AccessRead:
			spec.need = readAccess
		case host.AccessWrite:
			spec.need = writeAccess
		case host.AccessReadWrite:
			spec.need = readAccess | writeAccess
		}
		ops[name] = spec
	}
}

// Ops returns the names of every op Call serves.
func Ops() []string {
	names := make([]string, 0, len(ops))
	for name := range ops {
		names = append(names, name)
	}
	return names
}

// Call serves one host call made by who. args are decoded with
// host.ParseArgs and may alias guest memory: nothing here keeps them past
// the call without copying. Unknown ops and malformed arguments are
// errs.BadRequest; a bucket outside who's permissions is errs.Forbidden.
// Blocking ops (barrier.wait, queue.pop, signal.wait, lease.acquire) sleep
// on a channel, so the calling thread uses no CPU while it waits, and end
// early with ctx.
func (s *Service) Call(ctx context.Context, who Caller, op string, argv [][]byte) ([]byte, error) {
	spec, ok := ops[op]
	if !ok {
		return nil, errs.E(errs.BadRequest, "unknown host op %q", op)
	}
	if len(argv) < spec.min || (spec.max >= 0 && len(argv) > spec.max) {
		return nil, arityErr(op, spec)
	}
	if spec.bucket {
		// The permission check keeps nothing of the bucket name, so it
		// reads it in place.
		if err := who.allow(view(argv[0]), spec.need); err != nil {
			return nil, err
		}
	}
	return spec.fn(s, ctx, who, args{op: op, v: argv})
}

func arityErr(op string, spec opSpec) error {
	if spec.max < 0 {
		return errs.E(errs.BadRequest, "%s takes at least %d arguments", op, spec.min)
	}
	if spec.min == spec.max {
		return errs.E(errs.BadRequest, "%s takes %d arguments", op, spec.min)
	}
	return errs.E(errs.BadRequest, "%s takes %d to %d arguments", op, spec.min, spec.max)
}

// args reads an op's arguments.
type args struct {
	op string
	v  [][]byte
}

func (a args) str(i int) string {
	if i >= len(a.v) {
		return ""
	}
	return string(a.v[i])
}

// view is argument i as a string that aliases the argument's bytes (guest
// memory, for a wasm function), so it costs no allocation. It is only for
// a callee that keeps nothing of the string past the call: the bytes
// change when the guest reuses them.
func (a args) view(i int) string {
	if i >= len(a.v) {
		return ""
	}
	return view(a.v[i])
}

func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func (a args) bytes(i int) []byte {
	if i >= len(a.v) {
		return nil
	}
	return a.v[i]
}

// int parses argument i as a decimal int64; absent or empty gives def.
func (a args) int(i int, name string, def int64) (int64, error) {
	if i >= len(a.v) || len(a.v[i]) == 0 {
		return def, nil
	}
	n, err := strconv.ParseInt(string(a.v[i]), 10, 64)
	if err != nil {
		return 0, errs.E(errs.BadRequest, "%s: %s must be a decimal integer", a.op, name)
	}
	return n, nil
}

func (a args) uint(i int, name string) (uint64, error) {
	n, err := strconv.ParseUint(a.str(i), 10, 64)
	if err != nil {
		return 0, errs.E(errs.BadRequest, "%s: %s must be a decimal unsigned integer", a.op, name)
	}
	return n, nil
}

// ms parses argument i as a non-negative count of milliseconds.
func (a args) ms(i int, name string) (time.Duration, error) {
	n, err := a.int(i, name, 0)
	if err != nil {
		return 0, err
	}
	// MaxTTL bounds every duration: a TTL, and a wait or timeout that is
	// added to the time now.
	if n < 0 || n > store.MaxTTL.Milliseconds() {
		return 0, errs.E(errs.BadRequest, "%s: %s must be a number of milliseconds from 0 to %d (100 years)", a.op, name, store.MaxTTL.Milliseconds())
	}
	return time.Duration(n) * time.Millisecond, nil
}

// durability parses argument i in place: ParseDurability keeps nothing of
// it (its error quotes a copy).
func (a args) durability(i int) (store.Durability, error) {
	return store.ParseDurability(a.view(i))
}

func decimal(n int64) []byte { return strconv.AppendInt(nil, n, 10) }

func listResult(next string, keys []string) []byte {
	out := host.AppendArgs(nil, []byte(next))
	for _, k := range keys {
		out = host.AppendArgs(out, []byte(k))
	}
	return out
}

// kvGet and kvGetV pass the bucket and key to store.KV.Get as views: Get
// only builds its lookup key from them (a copy) and keeps neither
// (TestKVGetKeepsNoArgument checks the cache it fills), and the read of a
// cached value is the hot path of a function's storage calls.
func (s *Service) kvGet(_ context.Context, _ Caller, a args) ([]byte, error) {
	e, err := s.kv.Get(a.view(0), a.view(1))
	return e.Value, err
}

func (s *Service) kvGetV(_ context.Context, _ Caller, a args) ([]byte, error) {
	e, err := s.kv.Get(a.view(0), a.view(1))
	if err != nil {
		return nil, err
	}
	return host.AppendArgs(nil, e.Value, strconv.AppendUint(nil, e.Version, 10)), nil
}

func (s *Service) kvPut(_ context.Context, _ Caller, a args) ([]byte, error) {
	ttl, err := a.ms(3, "ttl_ms")
	if err != nil {
		return nil, err
	}
	d, err := a.durability(4)
	if err != nil {
		return nil, err
	}
	// Put copies bucket, key and value into its record and keeps none of
	// them (TestKVPutKeepsNoArgument), so they are passed in place.
	ver, err := s.kv.Put(a.view(0), a.view(1), a.bytes(2), store.WriteOptions{TTL: ttl, Durability: d})
	if err != nil {
		return nil, err
	}
	return strconv.AppendUint(nil, ver, 10), nil
}

func (s *Service) kvDelete(_ context.Context, _ Caller, a args) ([]byte, error) {
	d, err := a.durability(2)
	if err != nil {
		return nil, err
	}
	return nil, s.kv.Delete(a.str(0), a.str(1), store.WriteOptions{Durability: d})
}

func (s *Service) kvCAS(_ context.Context, _ Caller, a args) ([]byte, error) {
	ver, err := a.uint(2, "version")
	if err != nil {
		return nil, err
	}
	ttl, err := a.ms(4, "ttl_ms")
	if err != nil {
		return nil, err
	}
	d, err := a.durability(5)
	if err != nil {
		return nil, err
	}
	nv, err := s.kv.CAS(a.str(0), a.str(1), ver, a.bytes(3), store.WriteOptions{TTL: ttl, Durability: d})
	if err != nil {
		return nil, err
	}
	return strconv.AppendUint(nil, nv, 10), nil
}

func (s *Service) kvIncr(_ context.Context, _ Caller, a args) ([]byte, error) {
	delta, err := a.int(2, "delta", 1)
	if err != nil {
		return nil, err
	}
	d, err := a.durability(3)
	if err != nil {
		return nil, err
	}
	n, _, err := s.kv.Increment(a.str(0), a.str(1), delta, store.WriteOptions{Durability: d})
	if err != nil {
		return nil, err
	}
	return decimal(n), nil
}

func (a args) page(first int) (prefix, cursor string, limit int, err error) {
	l, err := a.int(first+2, "limit", 0)
	if err != nil {
		return "", "", 0, err
	}
	return a.str(first), a.str(first + 1), int(min(max(l, 0), 1000)), nil
}

func (s *Service) kvList(_ context.Context, _ Caller, a args) ([]byte, error) {
	prefix, cursor, limit, err := a.page(1)
	if err != nil {
		return nil, err
	}
	p, err := s.kv.List(a.str(0), prefix, cursor, limit)
	if err != nil {
		return nil, err
	}
	return listResult(p.Next, p.Keys), nil
}

func (s *Service) kvBatch(_ context.Context, _ Caller, a args) ([]byte, error) {
	d, err := a.durability(1)
	if err != nil {
		return nil, err
	}
	rest := a.v[2:]
	if len(rest)%3 != 0 {
		return nil, errs.E(errs.BadRequest, "kv.batch: ops come in (op, key, value) triples")
	}
	bucket := a.str(0)
	batch := make([]store.BatchOp, 0, len(rest)/3)
	for i := 0; i < len(rest); i += 3 {
		op := store.BatchOp{Bucket: bucket, Key: string(rest[i+1]), Value: rest[i+2]}
		switch string(rest[i]) {
		case "put":
		case "delete":
			op.Delete, op.Value = true, nil
		default:
			return nil, errs.E(errs.BadRequest, "kv.batch: op %d is %q, want put or delete", i/3, rest[i])
		}
		batch = append(batch, op)
	}
	vers, err := s.kv.Batch(batch, store.WriteOptions{Durability: d})
	if err != nil {
		return nil, err
	}
	var out []byte
	for _, v := range vers {
		out = host.AppendArgs(out, strconv.AppendUint(nil, v, 10))
	}
	return out, nil
}

func (s *Service) objPut(_ context.Context, _ Caller, a args) ([]byte, error) {
	data := a.bytes(2)
	if int64(len(data)) > s.cfg.MaxHostObjectBytes {
		return nil, errs.E(errs.PayloadTooLarge, "obj.put moves at most %d bytes per call; use the HTTP API for larger objects", s.cfg.MaxHostObjectBytes)
	}
	info, err := s.obj.Put(a.str(0), a.str(1), bytes.NewReader(data), a.str(3))
	if err != nil {
		return nil, err
	}
	return host.AppendArgs(nil, decimal(info.Size), []byte(info.SHA256)), nil
}

func (s *Service) objGet(_ context.Context, _ Caller, a args) ([]byte, error) {
	off, err := a.int(2, "offset", 0)
	if err != nil {
		return nil, err
	}
	length, err := a.int(3, "length", -1)
	if err != nil {
		return nil, err
	}
	rc, info, err := s.obj.ReadRange(a.str(0), a.str(1), off, length)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	n := info.Size - off
	if length >= 0 {
		n = min(n, length)
	}
	if n > s.cfg.MaxHostObjectBytes {
		return nil, errs.E(errs.PayloadTooLarge, "obj.get returns at most %d bytes per call; read ranges with offset and length", s.cfg.MaxHostObjectBytes)
	}
	out := make([]byte, n)
	if _, err := io.ReadFull(rc, out); err != nil {
		return nil, errs.Wrap(errs.Internal, err, "obj.get: read failed")
	}
	return out, nil
}

func (s *Service) objHead(_ context.Context, _ Caller, a args) ([]byte, error) {
	info, err := s.obj.Head(a.str(0), a.str(1))
	if err != nil {
		return nil, err
	}
	return host.AppendArgs(nil, decimal(info.Size), []byte(info.SHA256), []byte(info.ContentType),
		decimal(info.Modified.UnixMilli())), nil
}

func (s *Service) objDelete(_ context.Context, _ Caller, a args) ([]byte, error) {
	return nil, s.obj.Delete(a.str(0), a.str(1))
}

func (s *Service) objList(_ context.Context, _ Caller, a args) ([]byte, error) {
	prefix, cursor, limit, err := a.page(1)
	if err != nil {
		return nil, err
	}
	infos, next, err := s.obj.List(a.str(0), prefix, cursor, limit)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(infos))
	for i, in := range infos {
		keys[i] = in.Key
	}
	return listResult(next, keys), nil
}

func (s *Service) ephPut(_ context.Context, who Caller, a args) ([]byte, error) {
	ttl, err := a.ms(2, "ttl_ms")
	if err != nil {
		return nil, err
	}
	d, err := a.durability(3)
	if err != nil {
		return nil, err
	}
	return nil, s.eph.Put(who.Root, a.str(0), a.bytes(1), ttl, d)
}

func (s *Service) ephGet(_ context.Context, who Caller, a args) ([]byte, error) {
	return s.eph.Get(who.Root, a.str(0))
}

func (s *Service) ephDelete(_ context.Context, who Caller, a args) ([]byte, error) {
	return nil, s.eph.Delete(who.Root, a.str(0), store.DefaultDurability)
}

func (s *Service) ephList(_ context.Context, who Caller, a args) ([]byte, error) {
	prefix, cursor, limit, err := a.page(0)
	if err != nil {
		return nil, err
	}
	p, err := s.eph.List(who.Root, prefix, cursor, limit)
	if err != nil {
		return nil, err
	}
	return listResult(p.Next, p.Keys), nil
}

func (s *Service) counterAdd(_ context.Context, _ Caller, a args) ([]byte, error) {
	delta, err := a.int(2, "delta", 1)
	if err != nil {
		return nil, err
	}
	n, err := s.coord.Add(a.str(0), a.str(1), delta)
	if err != nil {
		return nil, err
	}
	return decimal(n), nil
}

func (s *Service) counterGet(_ context.Context, _ Caller, a args) ([]byte, error) {
	n, err := s.coord.Counter(a.str(0), a.str(1))
	if err != nil {
		return nil, err
	}
	return decimal(n), nil
}

func (s *Service) barrierWait(ctx context.Context, _ Caller, a args) ([]byte, error) {
	n, err := a.int(2, "n", 0)
	if err != nil {
		return nil, err
	}
	timeout, err := a.ms(3, "timeout_ms")
	if err != nil {
		return nil, err
	}
	if n < 1 || n > 1<<20 {
		return nil, errs.E(errs.BadRequest, "barrier.wait: n must be 1-%d", 1<<20)
	}
	idx, err := s.coord.Barrier(ctx, a.str(0), a.str(1), int(n), timeout)
	if err != nil {
		return nil, err
	}
	return decimal(int64(idx)), nil
}

func (s *Service) queuePush(_ context.Context, _ Caller, a args) ([]byte, error) {
	n, err := s.coord.Push(a.str(0), a.str(1), a.v[2:]...)
	if err != nil {
		return nil, err
	}
	return decimal(n), nil
}

func (s *Service) queuePop(ctx context.Context, _ Caller, a args) ([]byte, error) {
	timeout, err := a.ms(2, "timeout_ms")
	if err != nil {
		return nil, err
	}
	return s.coord.Pop(ctx, a.str(0), a.str(1), timeout)
}

func (s *Service) queueLen(_ context.Context, _ Caller, a args) ([]byte, error) {
	n, err := s.coord.Len(a.str(0), a.str(1))
	if err != nil {
		return nil, err
	}
	return decimal(n), nil
}

func (s *Service) signalPublish(_ context.Context, _ Caller, a args) ([]byte, error) {
	n, err := s.coord.Publish(a.str(0), a.str(1), a.bytes(2))
	if err != nil {
		return nil, err
	}
	return decimal(int64(n)), nil
}

func (s *Service) signalWait(ctx context.Context, _ Caller, a args) ([]byte, error) {
	timeout, err := a.ms(2, "timeout_ms")
	if err != nil {
		return nil, err
	}
	return s.coord.WaitSignal(ctx, a.str(0), a.str(1), timeout)
}

func (s *Service) leaseAcquire(ctx context.Context, _ Caller, a args) ([]byte, error) {
	ttl, err := a.ms(2, "ttl_ms")
	if err != nil {
		return nil, err
	}
	wait, err := a.ms(3, "wait_ms")
	if err != nil {
		return nil, err
	}
	l, err := s.coord.Acquire(ctx, a.str(0), a.str(1), ttl, wait)
	if err != nil {
		return nil, err
	}
	return host.AppendArgs(nil, []byte(l.Token), decimal(l.Expires.UnixMilli())), nil
}

func (s *Service) leaseRenew(_ context.Context, _ Caller, a args) ([]byte, error) {
	ttl, err := a.ms(3, "ttl_ms")
	if err != nil {
		return nil, err
	}
	l, err := s.coord.Renew(a.str(0), a.str(1), a.str(2), ttl)
	if err != nil {
		return nil, err
	}
	return decimal(l.Expires.UnixMilli()), nil
}

func (s *Service) leaseRelease(_ context.Context, _ Caller, a args) ([]byte, error) {
	return nil, s.coord.Release(a.str(0), a.str(1), a.str(2))
}

func cacheKey(a args) ([]byte, error) {
	k := a.bytes(0)
	if len(k) == 0 || len(k) > store.MaxKeyLen {
		return nil, errs.E(errs.BadRequest, "%s: key must be 1-%d bytes", a.op, store.MaxKeyLen)
	}
	return k, nil
}

func (s *Service) cacheGet(_ context.Context, who Caller, a args) ([]byte, error) {
	k, err := cacheKey(a)
	if err != nil {
		return nil, err
	}
	e, ok := s.functionCache(&who).Get(k, func() int64 { return time.Now().UnixNano() })
	if !ok {
		return nil, errs.E(errs.NotFound, "cache key not found")
	}
	return bytes.Clone(e.Value), nil
}

func (s *Service) cachePut(_ context.Context, who Caller, a args) ([]byte, error) {
	k, err := cacheKey(a)
	if err != nil {
		return nil, err
	}
	ttl, err := a.ms(2, "ttl_ms")
	if err != nil {
		return nil, err
	}
	var exp int64
	if ttl > 0 {
		exp = time.Now().Add(ttl).UnixNano()
	}
	// The value is copied: args alias guest memory.
	s.functionCache(&who).Put(string(k), bytes.Clone(a.bytes(1)), 0, exp)
	return nil, nil
}

func (s *Service) cacheDelete(_ context.Context, who Caller, a args) ([]byte, error) {
	k, err := cacheKey(a)
	if err != nil {
		return nil, err
	}
	s.functionCache(&who).Delete(string(k))
	return nil, nil
}
