package mr

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestWordCountSplitsOwnEveryWordOnce: however the input is cut, the map
// tasks together count every word exactly once (a word belongs to the
// split it starts in), and the reduce gives the plain count.
func TestWordCountSplitsOwnEveryWordOnce(t *testing.T) {
	words, _ := Words("/nonexistent") // the made-up list: no file needed
	var buf bytes.Buffer
	if err := GenText(&buf, 200_000, words, 3); err != nil {
		t.Fatal(err)
	}
	in := buf.Bytes()
	want := map[string]int64{}
	for _, w := range strings.Fields(string(in)) {
		want[w]++
	}
	for _, maps := range []int{1, 2, 7, 64, 1000} {
		outs, _, err := Local(WordCount, in, maps, 5, 2)
		if err != nil {
			t.Fatalf("%d maps: %v", maps, err)
		}
		got := map[string]int64{}
		var prev string
		for _, o := range outs {
			for _, line := range strings.Split(strings.TrimSuffix(string(o), "\n"), "\n") {
				if line == "" {
					continue
				}
				var w string
				var n int64
				fmt.Sscan(line, &w, &n)
				if w <= prev {
					t.Fatalf("%d maps: %q after %q", maps, w, prev)
				}
				prev = w
				got[w] = n
			}
		}
		if len(got) != len(want) {
			t.Errorf("%d maps: %d words, want %d", maps, len(got), len(want))
		}
		for w, n := range want {
			if got[w] != n {
				t.Errorf("%d maps: %q counted %d, want %d", maps, w, got[w], n)
				break
			}
		}
	}
}

// TestSortOrdersAndKeepsRecords: the sorted output is in key order and
// has the input's records (checksum), for several task counts.
func TestSortOrdersAndKeepsRecords(t *testing.T) {
	var buf bytes.Buffer
	if err := GenRecords(&buf, 20_000, 9); err != nil {
		t.Fatal(err)
	}
	in := buf.Bytes()
	var want Checksum
	want.Add(in)
	for _, tc := range []struct{ maps, reduces int }{{1, 1}, {3, 5}, {16, 64}} {
		outs, shuffle, err := Local(Sort, in, tc.maps, tc.reduces, 2)
		if err != nil {
			t.Fatal(err)
		}
		if shuffle != int64(len(in)) {
			t.Errorf("%v: shuffle %d bytes, want %d", tc, shuffle, len(in))
		}
		all := bytes.Join(outs, nil)
		var got Checksum
		got.Add(all)
		if got != want {
			t.Errorf("%v: checksum %+v, want %+v", tc, got, want)
		}
		keys := make([]string, 0, len(all)/RecordSize)
		for i := 0; i < len(all); i += RecordSize {
			keys = append(keys, string(all[i:i+KeySize]))
		}
		if !slices.IsSorted(keys) {
			t.Errorf("%v: output not in key order", tc)
		}
	}
	// A record that is changed changes the checksum.
	in[150] ^= 1
	var changed Checksum
	changed.Add(in)
	if changed == want {
		t.Error("a changed record kept the checksum")
	}
}

// TestGeneratorsAreDeterministic: the same seed gives the same bytes.
func TestGeneratorsAreDeterministic(t *testing.T) {
	words, _ := Words("/nonexistent")
	var a, b bytes.Buffer
	GenText(&a, 10_000, words, 1)
	GenText(&b, 10_000, words, 1)
	GenRecords(&a, 100, 1)
	GenRecords(&b, 100, 1)
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("same seed, different input")
	}
}

func TestChunks(t *testing.T) {
	b := make([]byte, 1050)
	for _, tc := range []struct{ max, unit, n, last int }{{1000, 100, 2, 50}, {950, 100, 2, 150}, {1050, 1, 1, 1050}, {100, 1, 11, 50}} {
		c := Chunks(b, tc.max, tc.unit)
		if len(c) != tc.n || len(c[len(c)-1]) != tc.last {
			t.Errorf("Chunks(1050, %d, %d): %d chunks, last %d; want %d, %d", tc.max, tc.unit, len(c), len(c[len(c)-1]), tc.n, tc.last)
		}
	}
}
