package auth

import "errors"

// Errors a credential check returns; the gateway answers each with 401.
var (
	ErrNoCredential = errors.New("auth: missing bearer token")
	ErrInvalidKey   = errors.New("auth: invalid bearer token")
	ErrExpiredKey   = errors.New("auth: key expired")
)

// ErrKeyNotFound is returned by Revoke for an id no key has.
var ErrKeyNotFound = errors.New("auth: no such key")
