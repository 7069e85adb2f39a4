package mr

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strconv"
)

// Jobs.
const (
	Sort      = "sort"
	WordCount = "wordcount"
)

// Split is one map task's byte range of the input.
type Split struct{ Off, Len int64 }

// Splits cuts an input of size bytes into n ranges; for sort they hold
// whole records.
func Splits(job string, size int64, n int) []Split {
	unit := int64(1)
	if job == Sort {
		unit = RecordSize
	}
	units := size / unit
	n = max(1, min(n, int(units)))
	s := make([]Split, n)
	for i := range s {
		a, b := units*int64(i)/int64(n), units*int64(i+1)/int64(n)
		s[i] = Split{a * unit, (b - a) * unit}
	}
	if job != Sort {
		s[n-1].Len = size - s[n-1].Off
	}
	return s
}

// MaxWord is the longest word a map task reads past its range to finish;
// a longer one is an error.
const MaxWord = 64

func isSep(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

// ReadRange is the range a word-count map task reads for split s of an
// input of size bytes: one byte before (to see whether its first word
// began earlier) and MaxWord after (to finish its last word).
func ReadRange(s Split, size int64) (off, n int64) {
	off = max(0, s.Off-1)
	end := min(size, s.Off+s.Len+MaxWord)
	return off, end - off
}

// OwnWords returns the part of buf, read with ReadRange for split s,
// holding the words whose first byte lies inside s: a word belongs to the
// split it starts in.
func OwnWords(buf []byte, s Split, size int64) ([]byte, error) {
	off, _ := ReadRange(s, size)
	start := int(s.Off - off)
	if start > 0 && !isSep(buf[start-1]) {
		for start < len(buf) && !isSep(buf[start]) {
			start++
		}
	}
	end := int(s.Off + s.Len - off)
	if end > len(buf) {
		end = len(buf)
	}
	if end > start && !isSep(buf[end-1]) {
		for end < len(buf) && !isSep(buf[end]) {
			end++
		}
		if end == len(buf) && s.Off+s.Len+MaxWord < size {
			return nil, fmt.Errorf("a word at offset %d is longer than %d bytes", s.Off+s.Len, MaxWord)
		}
	}
	if start > end {
		start = end
	}
	return buf[start:end], nil
}

// SortPartition is a key's reducer among r: key ranges of equal width over
// the first two key bytes (keys are uniform, so partitions are even).
func SortPartition(key []byte, r int) int {
	v := int(key[0]-keyMin)*keyRange + int(key[1]-keyMin)
	return v * r / (keyRange * keyRange)
}

// SortMap partitions whole records by key range into r parts.
func SortMap(data []byte, r int) ([][]byte, error) {
	if len(data)%RecordSize != 0 {
		return nil, fmt.Errorf("sort: %d bytes is not a whole number of %d-byte records", len(data), RecordSize)
	}
	parts := make([][]byte, r)
	guess := len(data)/r + len(data)/r/8 + RecordSize
	for i := range parts {
		parts[i] = make([]byte, 0, guess)
	}
	for i := 0; i < len(data); i += RecordSize {
		rec := data[i : i+RecordSize]
		p := SortPartition(rec, r)
		parts[p] = append(parts[p], rec...)
	}
	return parts, nil
}

type sortKey struct {
	hi  uint64
	lo  uint16
	idx uint32
}

// SortReduce sorts the records of parts by key into one buffer.
func SortReduce(parts [][]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	all := make([]byte, 0, n)
	for _, p := range parts {
		all = append(all, p...)
	}
	keys := make([]sortKey, len(all)/RecordSize)
	for i := range keys {
		rec := all[i*RecordSize:]
		keys[i] = sortKey{binary.BigEndian.Uint64(rec), binary.BigEndian.Uint16(rec[8:]), uint32(i)}
	}
	slices.SortFunc(keys, func(a, b sortKey) int {
		if c := cmp.Compare(a.hi, b.hi); c != 0 {
			return c
		}
		return cmp.Compare(a.lo, b.lo)
	})
	out := make([]byte, 0, len(all))
	for _, k := range keys {
		i := int(k.idx) * RecordSize
		out = append(out, all[i:i+RecordSize]...)
	}
	return out
}

// SampleOffsets are where the driver samples the input to choose word
// count's key ranges: 16 reads of SampleLen bytes, evenly spaced.
func SampleOffsets(size int64) []int64 {
	var offs []int64
	for i := int64(0); i < 16; i++ {
		offs = append(offs, size*i/16)
	}
	return offs
}

// SampleLen is the length of one sample read.
const SampleLen = 64 << 10

// Splitters returns r-1 words that cut the distinct words of the samples
// into r ranges of about as many distinct words each: after the map
// side's combining, a reducer's work is its number of distinct words.
func Splitters(samples [][]byte, r int) []string {
	seen := map[string]bool{}
	for _, s := range samples {
		f := bytes.Fields(s)
		if len(f) > 2 {
			f = f[1 : len(f)-1] // the ends may be cut words
		}
		for _, w := range f {
			seen[string(w)] = true
		}
	}
	words := make([]string, 0, len(seen))
	for w := range seen {
		words = append(words, w)
	}
	slices.Sort(words)
	var sp []string
	for i := 1; i < r && len(words) > 0; i++ {
		w := words[i*len(words)/r]
		if len(sp) == 0 || sp[len(sp)-1] < w {
			sp = append(sp, w)
		}
	}
	return sp
}

// WordPartition is a word's reducer: the number of splitters ≤ word.
func WordPartition(word string, splitters []string) int {
	return sort.Search(len(splitters), func(i int) bool { return splitters[i] > word })
}

// WCMap counts the words of text (combining on the map side) and
// partitions the counts by key range into len(splitters)+1 parts of
// "word count\n" lines.
func WCMap(text []byte, splitters []string) [][]byte {
	counts := map[string]int64{}
	for i := 0; i < len(text); {
		for i < len(text) && isSep(text[i]) {
			i++
		}
		j := i
		for j < len(text) && !isSep(text[j]) {
			j++
		}
		if j > i {
			counts[string(text[i:j])]++
		}
		i = j
	}
	parts := make([][]byte, len(splitters)+1)
	for w, c := range counts {
		p := WordPartition(w, splitters)
		parts[p] = append(parts[p], w...)
		parts[p] = append(parts[p], ' ')
		parts[p] = strconv.AppendInt(parts[p], c, 10)
		parts[p] = append(parts[p], '\n')
	}
	return parts
}

// WCReduce sums the counts of parts and returns "word count\n" lines in
// byte order of the words.
func WCReduce(parts [][]byte) ([]byte, error) {
	counts := map[string]int64{}
	for _, p := range parts {
		for len(p) > 0 {
			nl := bytes.IndexByte(p, '\n')
			if nl < 0 {
				return nil, fmt.Errorf("wordcount: a part ends without a newline")
			}
			line := p[:nl]
			p = p[nl+1:]
			sp := bytes.IndexByte(line, ' ')
			if sp < 0 {
				return nil, fmt.Errorf("wordcount: bad line %q", line)
			}
			c, err := strconv.ParseInt(string(line[sp+1:]), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("wordcount: bad count in %q", line)
			}
			counts[string(line[:sp])] += c
		}
	}
	words := make([]string, 0, len(counts))
	for w := range counts {
		words = append(words, w)
	}
	slices.Sort(words)
	var out []byte
	for _, w := range words {
		out = append(out, w...)
		out = append(out, ' ')
		out = strconv.AppendInt(out, counts[w], 10)
		out = append(out, '\n')
	}
	return out, nil
}

// Checksum is a record multiset's fingerprint: the number of records and
// the sum of their FNV-64a hashes (mod 2^64), which is the same for any
// order of the same records, as valsort's checksum.
type Checksum struct {
	Records uint64
	Sum     uint64
}

// Add folds the whole records of data into c.
func (c *Checksum) Add(data []byte) {
	h := fnv.New64a()
	for i := 0; i+RecordSize <= len(data); i += RecordSize {
		h.Reset()
		h.Write(data[i : i+RecordSize])
		c.Records++
		c.Sum += h.Sum64()
	}
}

// Chunks cuts b into pieces of at most max bytes, each a whole number of
// unit-byte records (unit 1 for text, whose parts may be cut anywhere
// since a reducer joins them back in order).
func Chunks(b []byte, max, unit int) [][]byte {
	max -= max % unit
	var out [][]byte
	for len(b) > max {
		out = append(out, b[:max])
		b = b[max:]
	}
	if len(b) > 0 {
		out = append(out, b)
	}
	return out
}
