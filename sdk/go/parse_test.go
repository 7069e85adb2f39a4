package mote

import (
	"strconv"
	"testing"
)

func TestParseDec(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"42", 42, true},
		{"-42", -42, true},
		{"123456789012345678", 123456789012345678, true},
		{"9223372036854775807", 9223372036854775807, true},
		{"-9223372036854775808", -9223372036854775808, true},
		{"9223372036854775808", 0, false},
		{"", 0, false},
		{"-", 0, false},
		{"12a", 0, false},
		{" 1", 0, false},
		{"--1", 0, false},
	}
	for _, tt := range tests {
		got, err := parseDec([]byte(tt.in))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseDec(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !hasCode(err, "internal") {
			t.Errorf("parseDec(%q): error %v, want code internal", tt.in, err)
		}
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0", 0, true},
		{"1", 1, true},
		{"9999999999999999999", 9999999999999999999, true},
		{"18446744073709551615", 18446744073709551615, true},
		{"18446744073709551616", 0, false},
		{"", 0, false},
		{"-1", 0, false},
		{"1.5", 0, false},
	}
	for _, tt := range tests {
		got, err := parseVersion([]byte(tt.in))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseVersion(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !hasCode(err, "internal") {
			t.Errorf("parseVersion(%q): error %v, want code internal", tt.in, err)
		}
	}
}

// FuzzParseDec checks the fast paths against strconv.
func FuzzParseDec(f *testing.F) {
	for _, s := range []string{"0", "-1", "123", "9223372036854775807", "18446744073709551615", "x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseDec([]byte(s))
		want, werr := strconv.ParseInt(s, 10, 64)
		if (err == nil) != (werr == nil) || (werr == nil && got != want) {
			t.Fatalf("parseDec(%q) = %d, %v; strconv: %d, %v", s, got, err, want, werr)
		}
		gotU, err := parseVersion([]byte(s))
		wantU, werr := strconv.ParseUint(s, 10, 64)
		if (err == nil) != (werr == nil) || (werr == nil && gotU != wantU) {
			t.Fatalf("parseVersion(%q) = %d, %v; strconv: %d, %v", s, gotU, err, wantU, werr)
		}
	})
}

func TestDecodeErrorCodes(t *testing.T) {
	tests := []struct {
		in   []byte
		want Error
	}{
		{appendArgs(nil, []byte("not_found"), []byte("")), Error{"not_found", ""}},
		{appendArgs(nil, []byte("teapot"), []byte("short and stout")), Error{"teapot", "short and stout"}},
		{appendArgs(nil, []byte("conflict"), []byte("stale"), []byte("extra")), Error{"internal", "mote: malformed error from host"}},
		{nil, Error{"internal", "mote: malformed error from host"}},
	}
	for _, tt := range tests {
		if got := decodeError(tt.in); *got != tt.want {
			t.Errorf("decodeError(%x) = %+v, want %+v", tt.in, *got, tt.want)
		}
	}
}
