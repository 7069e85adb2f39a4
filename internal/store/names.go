package store

import (
	"fmt"
	"unicode/utf8"

	"github.com/mote-run/mote/internal/errs"
)

// Name limits. Bucket names are short identifiers safe in any path, URL or
// subject; keys are free-form UTF-8 paths without the tricks ("..", control
// characters, a leading slash) that would let a name escape where it is put.
const (
	MaxBucketLen = 63
	MaxKeyLen    = 1024
)

// ValidBucket reports whether b is a valid bucket (or scope) name:
// 1–63 characters of [a-z0-9._-], starting with a letter or digit.
func ValidBucket(b string) error {
	if len(b) == 0 || len(b) > MaxBucketLen {
		return badName("bucket name must be 1-%d characters", MaxBucketLen)
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '.' || c == '-' || c == '_') && i > 0:
		default:
			return badName("bucket name %q: only [a-z0-9._-], starting with a letter or digit", b)
		}
	}
	return nil
}

// ValidKey reports whether k is a valid key: 1–1024 bytes of UTF-8 with no
// control characters, no leading '/', and no "." or ".." path segment.
func ValidKey(k string) error {
	if len(k) == 0 || len(k) > MaxKeyLen {
		return badName("key must be 1-%d bytes", MaxKeyLen)
	}
	if err := validChars(k); err != nil {
		return err
	}
	if k[0] == '/' {
		return badName("key %q must not start with '/'", k)
	}
	start := 0
	for i := 0; i <= len(k); i++ {
		if i == len(k) || k[i] == '/' {
			if seg := k[start:i]; seg == "." || seg == ".." {
				return badName("key %q has a %q path segment", k, seg)
			}
			start = i + 1
		}
	}
	return nil
}

// validPrefix checks a list prefix or cursor: it may be empty and need not
// be a whole key, but obeys the key's length and charset.
func validPrefix(p string) error {
	if len(p) > MaxKeyLen {
		return badName("prefix must be at most %d bytes", MaxKeyLen)
	}
	return validChars(p)
}

func validChars(s string) error {
	if !utf8.ValidString(s) {
		return badName("name is not valid UTF-8")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return badName("name has a control character")
		}
	}
	return nil
}

func badName(format string, args ...any) error {
	return errs.Wrap(errs.BadRequest, ErrInvalidName, fmt.Sprintf(format, args...))
}
