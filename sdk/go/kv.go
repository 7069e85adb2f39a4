package mote

import (
	"strconv"
	"time"
)

// Durability says when a write is acknowledged: Durable once fsynced
// (concurrent writers share fsyncs), Buffered once in memory and queued to
// the log (survives a clean shutdown, may be lost in a crash). The zero
// value uses the platform's default (durable unless configured otherwise).
type Durability string

const (
	DefaultDurability Durability = ""
	Durable           Durability = "durable"
	Buffered          Durability = "buffered"
)

// KVBucket is a handle on a KV bucket. The function's config must allow
// reading or writing the bucket, or calls fail with code "forbidden".
type KVBucket struct{ Name string }

// KV returns a handle on the KV bucket name.
func KV(name string) KVBucket { return KVBucket{Name: name} }

// PutOptions are optional settings of a KV write.
type PutOptions struct {
	TTL        time.Duration // expire the key this long after the write (0: never)
	Durability Durability
}

// IsNotFound reports whether err is a host error with code "not_found".
func IsNotFound(err error) bool { return hasCode(err, "not_found") }

// IsConflict reports whether err is a host error with code "conflict" (a
// stale compare-and-swap, a held lease).
func IsConflict(err error) bool { return hasCode(err, "conflict") }

// IsTimeout reports whether err is a host error with code "timeout".
func IsTimeout(err error) bool { return hasCode(err, "timeout") }

func hasCode(err error, code string) bool {
	e, ok := err.(*Error)
	return ok && e.Code == code
}

func decArg(n int64) []byte { return strconv.AppendInt(nil, n, 10) }

func msArg(d time.Duration) []byte {
	if d <= 0 {
		return nil
	}
	return decArg(int64((d + time.Millisecond - 1) / time.Millisecond))
}

// parseDec parses a decimal number from the host. Short numbers, which
// are nearly all of them (versions, counters), take a plain loop: in a
// wasm function strconv's general parser costs more than the host call.
func parseDec(b []byte) (int64, error) {
	digits := b
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if n, ok := parseDigits(digits); ok && len(digits) <= 18 {
		if len(digits) < len(b) {
			return -int64(n), nil
		}
		return int64(n), nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, errMalformedNumber()
	}
	return n, nil
}

// parseVersion parses an unsigned decimal number (a version) from the
// host, as parseDec does.
func parseVersion(b []byte) (uint64, error) {
	if n, ok := parseDigits(b); ok && len(b) <= 19 {
		return n, nil
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0, errMalformedNumber()
	}
	return n, nil
}

// parseDigits parses 1 to 19 decimal digits, which cannot overflow.
func parseDigits(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

func errMalformedNumber() error {
	return &Error{Code: "internal", Message: "mote: malformed number from host"}
}

func parseList(b []byte, min int) ([][]byte, error) {
	args, ok := parseArgs(b)
	if !ok || len(args) < min {
		return nil, &Error{Code: "internal", Message: "mote: malformed result from host"}
	}
	return args, nil
}

// Get returns the value at key; a missing key is an error for which
// IsNotFound is true. The value is the caller's. In a wasm function a
// small value shares a 2 KiB block with other results (see Call), so a
// value kept for long while very many are read is better copied.
func (b KVBucket) Get(key string) ([]byte, error) {
	return Call(OpKVGet, []byte(b.Name), []byte(key))
}

// GetVersion returns the value at key and its version, for CAS.
func (b KVBucket) GetVersion(key string) ([]byte, uint64, error) {
	res, err := Call(OpKVGetV, []byte(b.Name), []byte(key))
	if err != nil {
		return nil, 0, err
	}
	args, err := parseList(res, 2)
	if err != nil {
		return nil, 0, err
	}
	v, err := parseVersion(args[1])
	if err != nil {
		return nil, 0, err
	}
	return args[0], v, nil
}

// Put writes value at key and returns its new version.
func (b KVBucket) Put(key string, value []byte) (uint64, error) {
	return b.PutWith(key, value, PutOptions{})
}

// PutWith writes value at key with a TTL or durability.
func (b KVBucket) PutWith(key string, value []byte, o PutOptions) (uint64, error) {
	res, err := Call(OpKVPut, []byte(b.Name), []byte(key), value, msArg(o.TTL), []byte(o.Durability))
	if err != nil {
		return 0, err
	}
	return parseVersion(res)
}

// Delete removes key (a missing key is not an error).
func (b KVBucket) Delete(key string) error {
	_, err := Call(OpKVDelete, []byte(b.Name), []byte(key))
	return err
}

// CAS writes value at key only if its version is still version (0: only
// if the key does not exist) and returns the new version; otherwise the
// error satisfies IsConflict.
func (b KVBucket) CAS(key string, version uint64, value []byte) (uint64, error) {
	res, err := Call(OpKVCAS, []byte(b.Name), []byte(key), strconv.AppendUint(nil, version, 10), value)
	if err != nil {
		return 0, err
	}
	return parseVersion(res)
}

// Incr atomically adds delta to the decimal integer at key (missing: 0)
// and returns the result.
func (b KVBucket) Incr(key string, delta int64) (int64, error) {
	res, err := Call(OpKVIncr, []byte(b.Name), []byte(key), decArg(delta))
	if err != nil {
		return 0, err
	}
	return parseDec(res)
}

// List returns up to limit keys starting with prefix after cursor, and the
// cursor of the next page ("" at the end).
func (b KVBucket) List(prefix, cursor string, limit int) (keys []string, next string, err error) {
	res, err := Call(OpKVList, []byte(b.Name), []byte(prefix), []byte(cursor), decArg(int64(limit)))
	if err != nil {
		return nil, "", err
	}
	return decodeKeyList(res)
}

func decodeKeyList(res []byte) ([]string, string, error) {
	args, err := parseList(res, 1)
	if err != nil {
		return nil, "", err
	}
	keys := make([]string, len(args)-1)
	for i, a := range args[1:] {
		keys[i] = string(a)
	}
	return keys, string(args[0]), nil
}

// BatchOp is one write of an atomic KV batch.
type BatchOp struct {
	Key    string
	Value  []byte
	Delete bool
}

// Batch applies ops atomically (all or none) and returns each put's new
// version (0 for deletes).
func (b KVBucket) Batch(ops []BatchOp, d Durability) ([]uint64, error) {
	args := [][]byte{[]byte(b.Name), []byte(d)}
	for _, op := range ops {
		kind := "put"
		if op.Delete {
			kind = "delete"
		}
		args = append(args, []byte(kind), []byte(op.Key), op.Value)
	}
	res, err := Call(OpKVBatch, args...)
	if err != nil {
		return nil, err
	}
	list, err := parseList(res, 0)
	if err != nil {
		return nil, err
	}
	vers := make([]uint64, len(list))
	for i, v := range list {
		vers[i], _ = parseVersion(v)
	}
	return vers, nil
}

// EphPut writes value at key in the ephemeral scope of this invocation's
// call tree: every function in the tree can read it, no other tree can,
// and it is deleted when the tree completes or ttl passes (0: the
// platform's default).
func EphPut(key string, value []byte, ttl time.Duration) error {
	_, err := Call(OpEphPut, []byte(key), value, msArg(ttl))
	return err
}

// EphPutWith is EphPut with options: Buffered skips the fsync, for data
// (a shuffle) that its tree can make again if a crash loses it.
func EphPutWith(key string, value []byte, o PutOptions) error {
	_, err := Call(OpEphPut, []byte(key), value, msArg(o.TTL), []byte(o.Durability))
	return err
}

// EphGet reads key from the call tree's ephemeral scope.
func EphGet(key string) ([]byte, error) { return Call(OpEphGet, []byte(key)) }

// EphDelete removes key from the call tree's ephemeral scope.
func EphDelete(key string) error {
	_, err := Call(OpEphDelete, []byte(key))
	return err
}

// EphList lists keys of the call tree's ephemeral scope.
func EphList(prefix, cursor string, limit int) (keys []string, next string, err error) {
	res, err := Call(OpEphList, []byte(prefix), []byte(cursor), decArg(int64(limit)))
	if err != nil {
		return nil, "", err
	}
	return decodeKeyList(res)
}
