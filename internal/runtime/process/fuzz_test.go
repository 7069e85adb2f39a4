package process

import (
	"strings"
	"testing"
)

// FuzzSplitCommand checks that any handler string either fails cleanly or
// splits into words that survive re-quoting.
func FuzzSplitCommand(f *testing.F) {
	for _, s := range []string{"python3 handler.py", `node "a b" 'c' d\ e`, `"`, `\`, "a\tb\nc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := splitCommand(s)
		if err != nil {
			return
		}
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, "'"+strings.ReplaceAll(w, "'", `'\''`)+"'")
		}
		again, err := splitCommand(strings.Join(quoted, " "))
		if err != nil || strings.Join(again, "\x00") != strings.Join(words, "\x00") || len(again) != len(words) {
			t.Fatalf("splitCommand(%q) = %q; re-split of quoted form = %q, %v", s, words, again, err)
		}
	})
}

// FuzzLambdaErrorText checks that any error body a function posts renders
// as a bounded, non-empty message.
func FuzzLambdaErrorText(f *testing.F) {
	for _, s := range []string{`{"errorMessage":"m","errorType":"T"}`, ``, `{"errorType":""}`, "\xff\xfe"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := lambdaErrorText(b)
		if got == "" {
			t.Fatalf("lambdaErrorText(%q) is empty", b)
		}
		if len(got) > 2*len(b)+600 {
			t.Fatalf("lambdaErrorText(%q): %d bytes, unbounded", b, len(got))
		}
	})
}
