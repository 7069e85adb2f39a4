package process

import (
	"bufio"
	"bytes"
	"errors"
	"testing"
)

// sinkBuffer is a runtime.Stream that keeps what it is given and counts
// flushes; refuseAfter > 0 makes it refuse writes past that many bytes.
type sinkBuffer struct {
	bytes.Buffer
	flushes     int
	refuseAfter int
}

func (s *sinkBuffer) Write(p []byte) (int, error) {
	if s.refuseAfter > 0 && s.Len()+len(p) > s.refuseAfter {
		return 0, errors.New("client gone")
	}
	return s.Buffer.Write(p)
}

func (s *sinkBuffer) Flush() error { s.flushes++; return nil }

// FuzzStreamChunked checks the streaming reader of chunked bodies against
// the buffering one: on every input, the same bytes in the same order,
// and an error where it errs.
func FuzzStreamChunked(f *testing.F) {
	for _, s := range []string{"3;x=y\r\nhel\r\n2\r\nlo\r\n0\r\nTrailer: t\r\n\r\n", "0\r\n\r\n", "5\r\nab", "zz\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		want, werr := readChunked(bufio.NewReader(bytes.NewReader(raw)), nil, 1<<20)
		var sink sinkBuffer
		err := streamChunked(bufio.NewReader(bytes.NewReader(raw)), &sink)
		if (err == nil) != (werr == nil) && werr != errTooLarge {
			t.Fatalf("%q: stream err %v, buffered err %v", raw, err, werr)
		}
		if werr == nil && !bytes.Equal(sink.Bytes(), want) {
			t.Fatalf("%q: streamed %q, buffered %q", raw, sink.Bytes(), want)
		}
	})
}

func TestStreamChunkedFlushesEachChunkAndDrainsARefusal(t *testing.T) {
	body := "5\r\nfirst\r\n6\r\nsecond\r\n0\r\n\r\nNEXT"
	var sink sinkBuffer
	br := bufio.NewReader(bytes.NewReader([]byte(body)))
	if err := streamChunked(br, &sink); err != nil {
		t.Fatal(err)
	}
	if sink.String() != "firstsecond" || sink.flushes != 2 {
		t.Errorf("got %q with %d flushes, want firstsecond and 2", sink.String(), sink.flushes)
	}
	// A sink that refuses: the body is still read to its end, so the
	// connection stays in step for its next request.
	refusing := sinkBuffer{refuseAfter: 5}
	br = bufio.NewReader(bytes.NewReader([]byte(body)))
	if err := streamChunked(br, &refusing); err != nil {
		t.Fatal(err)
	}
	if rest, _ := br.ReadString(0); rest != "NEXT" || refusing.String() != "first" {
		t.Errorf("after a refusal: kept %q, left %q", refusing.String(), rest)
	}
}
