// Package mr holds what the MapReduce example's function, its runner and
// its in-memory baseline share: the deterministic input generators, the
// map and reduce kernels of word count and sort, and the key-range
// partitioning between them. The kernels know nothing of Mote, so the
// baseline runs exactly the code the functions run.
package mr

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
)

// RecordSize and KeySize are TeraSort's layout: 100-byte records whose
// first 10 bytes are the key. Records here are lines (the last two bytes
// are "\r\n", as gensort -a writes them) so GNU sort can sort them too.
const (
	RecordSize = 100
	KeySize    = 10
)

// Key bytes are printable ASCII from '!' to '~' (94 values), so a record
// never holds a separator GNU sort would see.
const (
	keyMin   = '!'
	keyRange = '~' - '!' + 1
)

// GenRecords writes n records to w, the same ones for the same seed: a
// random key, a space, the record's number in 20 digits, filler, "\r\n".
func GenRecords(w io.Writer, n int64, seed uint64) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	r := rand.New(rand.NewPCG(seed, 0x5ee5))
	var rec [RecordSize]byte
	for i := range rec {
		rec[i] = ' '
	}
	rec[RecordSize-2], rec[RecordSize-1] = '\r', '\n'
	for i := int64(0); i < n; i++ {
		x := r.Uint64()
		for k := 0; k < KeySize; k++ {
			rec[k] = byte(keyMin + x%keyRange)
			x /= keyRange
			if k == 6 {
				x = r.Uint64()
			}
		}
		num := strconv.AppendInt(rec[KeySize+1:KeySize+1:KeySize+21], i, 10)
		copy(rec[KeySize+1+20-len(num):], num)
		for j := KeySize + 1; j < KeySize+1+20-len(num); j++ {
			rec[j] = '0'
		}
		f := byte('A' + i%26)
		for j := KeySize + 22; j < RecordSize-2; j++ {
			rec[j] = f
		}
		if _, err := bw.Write(rec[:]); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// Words returns the word list word count draws from: the letters-only
// words of path (a Debian dictionary such as wamerican's
// /usr/share/dict/words), or, if path cannot be read, 50,000 words made
// up deterministically. fromDict says which.
func Words(path string) (words []string, fromDict bool) {
	if b, err := os.ReadFile(path); err == nil {
		seen := map[string]bool{}
		for _, w := range bytes.Fields(b) {
			if len(w) > 0 && lettersOnly(w) && !seen[string(w)] {
				seen[string(w)] = true
				words = append(words, string(w))
			}
		}
		if len(words) > 0 {
			return words, true
		}
	}
	r := rand.New(rand.NewPCG(7, 7))
	seen := map[string]bool{}
	for len(words) < 50_000 {
		w := make([]byte, 2+r.IntN(10))
		for i := range w {
			w[i] = byte('a' + r.IntN(26))
		}
		if !seen[string(w)] {
			seen[string(w)] = true
			words = append(words, string(w))
		}
	}
	return words, false
}

func lettersOnly(w []byte) bool {
	for _, c := range w {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// GenText writes about size bytes of text to w: lines of 12 words drawn
// from words with a Zipf distribution (s = 1.1) over a seeded shuffle of
// the list, so a word's frequency does not follow its alphabetical place.
func GenText(w io.Writer, size int64, words []string, seed uint64) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	r := rand.New(rand.NewPCG(seed, 0x70f))
	order := make([]string, len(words))
	copy(order, words)
	r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	z := rand.NewZipf(r, 1.1, 1, uint64(len(order)-1))
	var written int64
	for written < size {
		for i := 0; i < 12; i++ {
			word := order[z.Uint64()]
			bw.WriteString(word)
			if i < 11 {
				bw.WriteByte(' ')
			}
			written += int64(len(word)) + 1
		}
		if err := bw.WriteByte('\n'); err != nil {
			return err
		}
	}
	return bw.Flush()
}
