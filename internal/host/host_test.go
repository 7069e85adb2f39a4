package host

import (
	"bytes"
	"testing"

	"github.com/mote-run/mote/internal/errs"
)

func TestArgsRoundTrip(t *testing.T) {
	for _, args := range [][][]byte{
		nil,
		{{}},
		{[]byte("kv.get"), []byte("bucket"), bytes.Repeat([]byte("x"), 300)},
		{{}, []byte("a"), {}},
	} {
		got, err := ParseArgs(AppendArgs(nil, args...))
		if err != nil || len(got) != len(args) {
			t.Fatalf("%q: got %q, %v", args, got, err)
		}
		for i := range args {
			if !bytes.Equal(got[i], args[i]) {
				t.Errorf("arg %d: got %q, want %q", i, got[i], args[i])
			}
		}
	}
}

func TestParseArgsRefusesMalformed(t *testing.T) {
	for _, b := range [][]byte{{0x05, 'a'}, {0xff}, {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}} {
		if _, err := ParseArgs(b); errs.CodeOf(err) != errs.BadRequest {
			t.Errorf("%x: got %v, want bad_request", b, err)
		}
	}
}

func FuzzParseArgs(f *testing.F) {
	f.Add(AppendArgs(nil, []byte("op"), []byte("x")))
	f.Add([]byte{0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		args, err := ParseArgs(b)
		if err != nil {
			return
		}
		// Non-minimal varints parse but re-encode shorter, so the
		// encoding may differ from b; the parts must survive a round trip.
		back, err := ParseArgs(AppendArgs(nil, args...))
		if err != nil || len(back) != len(args) {
			t.Fatalf("round trip of %x failed: %d parts, %v; want %d", b, len(back), err, len(args))
		}
		for i := range args {
			if !bytes.Equal(back[i], args[i]) {
				t.Fatalf("round trip of %x: part %d = %q, want %q", b, i, back[i], args[i])
			}
		}
	})
}
