package store

import (
	"strings"
	"testing"

	"github.com/mote-run/mote/internal/errs"
)

func TestValidBucket(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"photos", true},
		{"a", true},
		{"my-bucket.v2_x", true},
		{strings.Repeat("a", 63), true},
		{"", false},
		{strings.Repeat("a", 64), false},
		{"..", false},
		{".hidden", false},
		{"-x", false},
		{"Upper", false},
		{"a/b", false},
		{"a b", false},
		{"a\x00", false},
	}
	for _, tt := range tests {
		err := ValidBucket(tt.name)
		if got := err == nil; got != tt.ok {
			t.Errorf("ValidBucket(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && errs.CodeOf(err) != errs.BadRequest {
			t.Errorf("ValidBucket(%q) code = %s, want bad_request", tt.name, errs.CodeOf(err))
		}
	}
}

func TestValidKey(t *testing.T) {
	tests := []struct {
		key string
		ok  bool
	}{
		{"k", true},
		{"users/42/profile.json", true},
		{"ünïcødé key", true},
		{"a..b", true},
		{strings.Repeat("k", 1024), true},
		{"", false},
		{strings.Repeat("k", 1025), false},
		{"/abs", false},
		{"..", false},
		{"a/../b", false},
		{"a/./b", false},
		{"a/..", false},
		{"tab\there", false},
		{"nul\x00", false},
		{"del\x7f", false},
		{"bad\xffutf8", false},
	}
	for _, tt := range tests {
		err := ValidKey(tt.key)
		if got := err == nil; got != tt.ok {
			t.Errorf("ValidKey(%q) = %v, want ok=%v", tt.key, err, tt.ok)
		}
	}
}

func FuzzValidKey(f *testing.F) {
	for _, s := range []string{"a", "a/b", "../x", "x\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, k string) {
		if ValidKey(k) != nil {
			return
		}
		for _, seg := range strings.Split(k, "/") {
			if seg == ".." || seg == "." {
				t.Fatalf("ValidKey accepted %q with a dot segment", k)
			}
		}
		if strings.HasPrefix(k, "/") || strings.ContainsAny(k, "\x00\n\r") {
			t.Fatalf("ValidKey accepted %q", k)
		}
	})
}
