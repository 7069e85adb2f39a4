package secrets

import "errors"

// Sentinels of the secrets store. Errors returned to callers are
// *errs.Error values that wrap one of these, so callers classify with
// errors.Is on either the sentinel or the errs code.
var (
	// ErrNotFound is a secret that does not exist.
	ErrNotFound = errors.New("secrets: not found")
	// ErrWrongKey is a key file that does not open what the store holds.
	ErrWrongKey = errors.New("secrets: key does not match")
	// ErrKeyFile is a key file that cannot be used (missing while secrets
	// exist, malformed, or readable by others).
	ErrKeyFile = errors.New("secrets: unusable key file")
	// ErrInvalid is a malformed secret name or value.
	ErrInvalid = errors.New("secrets: invalid name or value")
)
