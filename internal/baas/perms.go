package baas

import (
	"strings"

	"github.com/mote-run/mote/internal/errs"
)

// Permissions lists the buckets a function may read and write, from its
// config. A pattern is "*" (every bucket), "prefix*" (buckets starting
// with prefix) or an exact bucket name. Write does not imply Read. The
// same bucket names cover KV keys, objects and the coordination
// primitives (counters, barriers, queues, signals, leases) named in them.
type Permissions struct {
	Read  []string `json:"read,omitempty"`
	Write []string `json:"write,omitempty"`
}

// CanRead reports whether bucket may be read.
func (p Permissions) CanRead(bucket string) bool { return matchAny(p.Read, bucket) }

// CanWrite reports whether bucket may be written.
func (p Permissions) CanWrite(bucket string) bool { return matchAny(p.Write, bucket) }

// Validate reports a malformed pattern: "*" may only end a pattern.
func (p Permissions) Validate() error {
	for _, list := range [][]string{p.Read, p.Write} {
		for _, pat := range list {
			if pat == "" || strings.Contains(strings.TrimSuffix(pat, "*"), "*") {
				return errs.E(errs.BadRequest, "bucket pattern %q: use a name, \"prefix*\" or \"*\"", pat)
			}
		}
	}
	return nil
}

func matchAny(patterns []string, bucket string) bool {
	for _, p := range patterns {
		if p == bucket || p == "*" {
			return true
		}
		if n := len(p) - 1; n >= 0 && p[n] == '*' && strings.HasPrefix(bucket, p[:n]) {
			return true
		}
	}
	return false
}

// Caller is who makes a host call: the function, the invocation tree it
// runs in, and what its config allows.
type Caller struct {
	// Function is the function's name; it keys the function's cache.
	Function string
	// Root is the invocation tree's root id: the scope of eph.* ops.
	Root string
	// Perms are the buckets the function may read and write.
	Perms Permissions
	// CacheBytes is the function's cache budget (0: the Service default).
	CacheBytes int64
}

type access uint8

const (
	readAccess access = 1 << iota
	writeAccess
)

func (who *Caller) allow(bucket string, need access) error {
	if need&readAccess != 0 && !who.Perms.CanRead(bucket) {
		return errs.E(errs.Forbidden, "function %q may not read bucket %q", who.Function, bucket)
	}
	if need&writeAccess != 0 && !who.Perms.CanWrite(bucket) {
		return errs.E(errs.Forbidden, "function %q may not write bucket %q", who.Function, bucket)
	}
	return nil
}
