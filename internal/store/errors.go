package store

import (
	"errors"

	"github.com/mote-run/mote/internal/errs"
)

// Sentinels of the BaaS storage engine. Errors returned to callers are
// *errs.Error values that wrap one of these (or ErrNotFound), so callers can
// classify with errors.Is on either the sentinel or the errs code.
var (
	// ErrVersionMismatch is a compare-and-swap against a stale version.
	ErrVersionMismatch = errors.New("store: version mismatch")
	// ErrTooLarge is a value or object over its configured limit.
	ErrTooLarge = errors.New("store: value too large")
	// ErrInvalidName is a bucket, key or scope name that fails validation.
	ErrInvalidName = errors.New("store: invalid name")
	// ErrClosed is an operation on a closed store.
	ErrClosed = errors.New("store: closed")
	// ErrTimeout is a blocking wait that ran out of time.
	ErrTimeout = errors.New("store: wait timed out")
	// ErrLeaseHeld is an acquire of a lease another owner holds.
	ErrLeaseHeld = errors.New("store: lease held by another owner")
	// ErrWriteFailed is a write the storage engine could not make durable
	// (a failed WAL write or fsync). The engine refuses writes after one;
	// reads go on.
	ErrWriteFailed = errors.New("store: write failed")
	// ErrNotInteger is an increment of a value that is not a decimal integer.
	ErrNotInteger = errors.New("store: value is not an integer")
)

func notFound(what string) error {
	return errs.Wrap(errs.NotFound, ErrNotFound, what+" not found")
}

func closedErr() error {
	return errs.Wrap(errs.Unavailable, ErrClosed, "store is closed")
}

func timeoutErr(what string) error {
	return errs.Wrap(errs.Timeout, ErrTimeout, what+" timed out")
}

func internalErr(err error, msg string) error {
	return errs.Wrap(errs.Internal, err, msg)
}
