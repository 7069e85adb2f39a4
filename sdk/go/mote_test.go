package mote

import (
	"bytes"
	"testing"
)

func TestArgsRoundTrip(t *testing.T) {
	tests := [][][]byte{
		nil,
		{{}},
		{[]byte("a")},
		{[]byte("key"), {}, bytes.Repeat([]byte("v"), 300)},
	}
	for _, args := range tests {
		enc := appendArgs(nil, args...)
		got, ok := parseArgs(enc)
		if !ok {
			t.Fatalf("parseArgs(appendArgs(%q)) failed", args)
		}
		if len(got) != len(args) {
			t.Fatalf("got %d args, want %d", len(got), len(args))
		}
		for i := range args {
			if !bytes.Equal(got[i], args[i]) {
				t.Errorf("arg %d: got %q, want %q", i, got[i], args[i])
			}
		}
	}
}

func TestParseArgsMalformed(t *testing.T) {
	tests := [][]byte{
		{5, 'a'}, // length past the end
		{0x80},   // truncated uvarint
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, // overflow
	}
	for _, b := range tests {
		if _, ok := parseArgs(b); ok {
			t.Errorf("parseArgs(%x) ok, want malformed", b)
		}
	}
}

func TestDecodeError(t *testing.T) {
	tests := []struct {
		in   []byte
		want Error
	}{
		{appendArgs(nil, []byte("not_found"), []byte("kv: no key")), Error{"not_found", "kv: no key"}},
		{appendArgs(nil, []byte("x")), Error{"internal", "mote: malformed error from host"}},
		{[]byte{9}, Error{"internal", "mote: malformed error from host"}},
	}
	for _, tt := range tests {
		if got := decodeError(tt.in); *got != tt.want {
			t.Errorf("decodeError(%x) = %+v, want %+v", tt.in, *got, tt.want)
		}
	}
	if got, want := (&Error{"timeout", "too slow"}).Error(), "timeout: too slow"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func FuzzParseArgs(f *testing.F) {
	f.Add(appendArgs(nil, []byte("a"), []byte("bc")))
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		args, ok := parseArgs(b)
		if !ok {
			return
		}
		if re := appendArgs(nil, args...); len(re) > len(b) {
			t.Fatalf("re-encoding grew: %d > %d", len(re), len(b))
		}
	})
}
