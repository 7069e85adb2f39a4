package host

import "strings"

//go:generate go test -run TestGenerated -update

// Op describes one host op: the one description from which the BaaS
// layer's op table takes each op's arity and grant, and from which the
// SDKs' op constants (sdk/go/ops.go, sdk/js/ops.mjs,
// sdk/python/mote/_ops.py) and the table in docs/host-api.md are
// generated; ops_test.go checks that every server part serves exactly
// these ops and that the generated files are current, so an SDK cannot
// name an op the server lacks.
type Op struct {
	Name string
	// Args lists the arguments by name, comma-separated: "name?" is
	// optional (absent or empty: the default), and a last "name..." is
	// repeated, zero or more times.
	Args string
	// Result says what a success returns.
	Result string
	// Access is what the calling function needs.
	Access Access
	// Const is the SDK constants' name, upper snake case (KV_GET); Go's
	// is the same in camel case with the Op prefix (OpKVGet).
	Const string
}

// Access is what a host op needs from its caller.
type Access string

// The accesses. Read, Write and ReadWrite are on the bucket named by the
// op's first argument (the function's permissions.read/write).
const (
	AccessNone        Access = "none"
	AccessRead        Access = "read"
	AccessWrite       Access = "write"
	AccessReadWrite   Access = "read+write"
	AccessInvoke      Access = "invoke grant" // permissions.invoke must name the function
	AccessOwnTree     Access = "own tree"     // the caller's call tree's data, always
	AccessOwnFunction Access = "own function" // the caller's own cache, always
)

// Bucket reports whether a's check is on a bucket named by the first
// argument.
func (a Access) Bucket() bool {
	return a == AccessRead || a == AccessWrite || a == AccessReadWrite
}

// Ops is every host op, in the order the docs list them.
var Ops = []Op{
	{OpLog, "message", "empty", AccessNone, "LOG"},

	{"invoke", "function, payload", "the child's output; a failure is the child's code and message", AccessInvoke, "INVOKE"},
	{"invoke_async", "function, payload", "a handle (the child's invocation id)", AccessInvoke, "INVOKE_ASYNC"},
	{"await", "mode, timeout_ms, handle...", "two args per handle: code, data", AccessNone, "AWAIT"},
	{"map", "function, concurrency, event...", "two args per event, in event order: code, data", AccessInvoke, "MAP"},

	{"kv.get", "bucket, key", "value", AccessRead, "KV_GET"},
	{"kv.getv", "bucket, key", "[value, version]", AccessRead, "KV_GETV"},
	{"kv.put", "bucket, key, value, ttl_ms?, durability?", "version", AccessWrite, "KV_PUT"},
	{"kv.delete", "bucket, key, durability?", "empty", AccessWrite, "KV_DELETE"},
	{"kv.cas", "bucket, key, version, value, ttl_ms?, durability?", "new version", AccessReadWrite, "KV_CAS"},
	{"kv.incr", "bucket, key, delta?, durability?", "new value", AccessReadWrite, "KV_INCR"},
	{"kv.list", "bucket, prefix?, cursor?, limit?", "[next_cursor, key...]", AccessRead, "KV_LIST"},
	{"kv.batch", "bucket, durability, op_key_value...", "[version...]", AccessWrite, "KV_BATCH"},

	{"obj.put", "bucket, key, data, content_type?", "[size, sha256]", AccessWrite, "OBJ_PUT"},
	{"obj.get", "bucket, key, offset?, length?", "bytes", AccessRead, "OBJ_GET"},
	{"obj.head", "bucket, key", "[size, sha256, content_type, modified_unix_ms]", AccessRead, "OBJ_HEAD"},
	{"obj.delete", "bucket, key", "empty", AccessWrite, "OBJ_DELETE"},
	{"obj.list", "bucket, prefix?, cursor?, limit?", "[next_cursor, key...]", AccessRead, "OBJ_LIST"},

	{"eph.put", "key, value, ttl_ms?, durability?", "empty", AccessOwnTree, "EPH_PUT"},
	{"eph.get", "key", "value", AccessOwnTree, "EPH_GET"},
	{"eph.delete", "key", "empty", AccessOwnTree, "EPH_DELETE"},
	{"eph.list", "prefix?, cursor?, limit?", "[next_cursor, key...]", AccessOwnTree, "EPH_LIST"},

	{"counter.add", "bucket, name, delta?", "new value", AccessReadWrite, "COUNTER_ADD"},
	{"counter.get", "bucket, name", "value", AccessRead, "COUNTER_GET"},
	{"barrier.wait", "bucket, name, n, timeout_ms", "arrival order 1..n", AccessWrite, "BARRIER_WAIT"},
	{"queue.push", "bucket, name, item, items...", "queue length", AccessWrite, "QUEUE_PUSH"},
	{"queue.pop", "bucket, name, timeout_ms?", "item", AccessReadWrite, "QUEUE_POP"},
	{"queue.len", "bucket, name", "length", AccessRead, "QUEUE_LEN"},
	{"signal.publish", "bucket, name, payload?", "number woken", AccessWrite, "SIGNAL_PUBLISH"},
	{"signal.wait", "bucket, name, timeout_ms", "payload", AccessRead, "SIGNAL_WAIT"},
	{"lease.acquire", "bucket, name, ttl_ms, wait_ms?", "[token, expires_unix_ms]", AccessWrite, "LEASE_ACQUIRE"},
	{"lease.renew", "bucket, name, token, ttl_ms", "expires_unix_ms", AccessWrite, "LEASE_RENEW"},
	{"lease.release", "bucket, name, token", "empty", AccessWrite, "LEASE_RELEASE"},

	{"cache.get", "key", "value", AccessOwnFunction, "CACHE_GET"},
	{"cache.put", "key, value, ttl_ms?", "empty", AccessOwnFunction, "CACHE_PUT"},
	{"cache.delete", "key", "empty", AccessOwnFunction, "CACHE_DELETE"},
}

var byName = func() map[string]*Op {
	m := make(map[string]*Op, len(Ops))
	for i := range Ops {
		m[Ops[i].Name] = &Ops[i]
	}
	return m
}()

// Describe returns the description of the op named name.
func Describe(name string) (Op, bool) {
	op, ok := byName[name]
	if !ok {
		return Op{}, false
	}
	return *op, true
}

// ArgNames returns the op's argument names as written in Args.
func (o Op) ArgNames() []string {
	if o.Args == "" {
		return nil
	}
	return strings.Split(o.Args, ", ")
}

// Arity returns how many arguments the op takes: at least min, at most
// max, max < 0 for no bound (a repeated last argument).
func (o Op) Arity() (min, max int) {
	for _, a := range o.ArgNames() {
		switch {
		case strings.HasSuffix(a, "..."):
			return min, -1
		case strings.HasSuffix(a, "?"):
			max++
		default:
			min++
			max++
		}
	}
	return min, max
}
