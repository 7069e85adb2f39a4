package trigger

import "errors"

// Sentinels of the trigger package; the errors returned to callers are
// *errs.Error values wrapping them where a caller may want to tell them
// apart.
var (
	// ErrBadExpr is a schedule expression that does not parse
	// (*ExprError matches it).
	ErrBadExpr = errors.New("trigger: bad schedule expression")
	// ErrExists is an add of a trigger whose name is taken.
	ErrExists = errors.New("trigger: name taken")
	// ErrNotFound is a trigger that does not exist.
	ErrNotFound = errors.New("trigger: not found")
	// ErrClosed is a call on a closed Manager.
	ErrClosed = errors.New("trigger: closed")
)
