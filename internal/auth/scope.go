// Package auth holds Mote's access control for its HTTP API: scoped API
// keys (stored hashed in the embedded store), the scopes a request needs,
// the principal a request acts as, and the audit log of management
// actions.
//
// A key's token is mote_<id>_<secret>: the id finds the stored record,
// the secret (32 random bytes, base64url) is checked against its SHA-256
// in constant time. The gateway (internal/api) maps each route to the
// Need it has and asks the request's Principal whether it is allowed.
package auth

import (
	"strings"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/store"
)

// Right is a kind of access a request needs.
type Right uint8

// The rights. A Need for Invoke, Read or Write names its function or
// bucket.
const (
	Public  Right = iota // no credential needed (/healthz)
	Admin                // everything, keys and the audit log included
	Deploy               // manage functions: deploy, remove, rollback, logs, invocation records
	Metrics              // read /metrics and storage statistics
	Invoke               // invoke one function (Target)
	Read                 // read one bucket (Target)
	Write                // write one bucket (Target)
)

var rightNames = [...]string{Public: "public", Admin: "admin", Deploy: "deploy", Metrics: "metrics", Invoke: "invoke", Read: "read", Write: "write"}

// Need is what a request requires: a right and, for Invoke, Read and
// Write, the function or bucket it acts on.
type Need struct {
	Right  Right
	Target string
}

// String is the scope that grants the need, as `mote key create --scope`
// takes it: "deploy", "invoke:hello", "write:photos".
func (n Need) String() string {
	switch n.Right {
	case Invoke, Read, Write:
		return rightNames[n.Right] + ":" + n.Target
	}
	return rightNames[n.Right]
}

// Scope is one right a key holds: "admin", "deploy", "metrics",
// "invoke:FN", "read:BUCKET" or "write:BUCKET", where FN or BUCKET may end
// in '*' to match every name with that prefix ("invoke:*" is every
// function). write:BUCKET implies read:BUCKET.
type Scope string

// ParseScope checks s and returns it as a Scope.
func ParseScope(s string) (Scope, error) {
	kind, target, hasTarget := strings.Cut(s, ":")
	switch kind {
	case "admin", "deploy", "metrics":
		if hasTarget {
			return "", errs.E(errs.BadRequest, "scope %q takes no target", s)
		}
		return Scope(s), nil
	case "invoke", "read", "write":
		if target == "" {
			return "", errs.E(errs.BadRequest, "scope %q needs a target: %s:NAME, or a prefix ending in '*'", s, kind)
		}
		name, glob := strings.CutSuffix(target, "*")
		if glob && name == "" {
			return Scope(s), nil
		}
		if glob {
			// A prefix is checked as a name would be, so a typo in its
			// characters is reported rather than matching nothing.
			name += "x"
		}
		var err error
		if kind == "invoke" {
			err = registry.ValidName(name)
		} else {
			err = store.ValidBucket(name)
		}
		if err != nil {
			return "", errs.E(errs.BadRequest, "scope %q: %s", s, errs.MessageOf(err))
		}
		return Scope(s), nil
	}
	return "", errs.E(errs.BadRequest, "unknown scope %q: use admin, deploy, metrics, invoke:FN, read:BUCKET or write:BUCKET", s)
}

// Allows reports whether the scope grants n.
func (s Scope) Allows(n Need) bool {
	if n.Right == Public || s == "admin" {
		return true
	}
	kind, pattern, _ := strings.Cut(string(s), ":")
	switch n.Right {
	case Deploy:
		return kind == "deploy"
	case Metrics:
		return kind == "metrics"
	case Invoke:
		return kind == "invoke" && match(pattern, n.Target)
	case Read:
		return (kind == "read" || kind == "write") && match(pattern, n.Target)
	case Write:
		return kind == "write" && match(pattern, n.Target)
	}
	return false
}

// match reports whether name matches pattern: equal, or a prefix when
// pattern ends in '*'.
func match(pattern, name string) bool {
	if p, glob := strings.CutSuffix(pattern, "*"); glob {
		return strings.HasPrefix(name, p)
	}
	return pattern == name
}
