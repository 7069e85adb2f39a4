package process

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/host"
	"github.com/mote-run/mote/internal/runtime"
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

// fuzzInstance is an instance with just what the readers use: a 64 KiB
// body limit and invocation req-1 running, whose Host records its calls.
func fuzzInstance() (*instance, *call, *callLog) {
	rt := &Runtime{cfg: Config{MaxResponse: 64 << 10}}
	in := &instance{m: &module{rt: rt}, quit: make(chan struct{}), ready: make(chan struct{})}
	h := &callLog{}
	cl := &call{id: "req-1", ev: &runtime.Event{Payload: []byte("payload"), Host: h}, ctx: context.Background(), deadline: time.Now().Add(time.Minute), done: make(chan struct{})}
	in.cur.Store(cl)
	return in, cl, h
}

// callLog is a Host that records the last call.
type callLog struct {
	op   string
	args [][]byte
}

func (h *callLog) Call(ctx context.Context, op string, args [][]byte) ([]byte, error) {
	h.op, h.args = op, args
	return []byte("r"), nil
}

// FuzzReadRequest feeds readRequest what a function may send to its
// Runtime API, and checks it against net/http's parser: a body is never
// over the limit, and when both parsers take a request they agree on its
// method, path and body.
func FuzzReadRequest(f *testing.F) {
	for _, s := range []string{
		"POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
		"POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nhel\r\n2\r\nlo\r\n0\r\nTrailer: t\r\n\r\n",
		"POST http://127.0.0.1:9001/2018-06-01/runtime/invocation/req-1/error?x=1 HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
		"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nConnection: close\r\n\r\n",
		"POST /2018-06-01/mote/call/kv.get HTTP/1.1\r\nLambda-Runtime-Aws-Request-Id: req-1\r\nContent-Length: 99999999\r\n\r\n",
		"\r\nHELLO\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in, _, _ := fuzzInstance()
		var r rtRequest
		_, err := in.readRequest(bufio.NewReader(bytes.NewReader(b)), bufio.NewWriter(io.Discard), &r, nil)
		if err != nil {
			return
		}
		if int64(len(r.body)) > in.m.rt.cfg.MaxResponse {
			t.Fatalf("body of %d bytes, over the %d limit", len(r.body), in.m.rt.cfg.MaxResponse)
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			return // net/http is stricter in places; ours needs only what SDKs send
		}
		if req.Method != r.method {
			t.Errorf("method: got %q, net/http %q", r.method, req.Method)
		}
		// Ours takes the origin form and http(s) absolute forms; anything
		// else is a path no route matches.
		uri := req.RequestURI
		if strings.HasPrefix(uri, "http://") || strings.HasPrefix(uri, "https://") {
			uri = strings.TrimPrefix(uri, req.URL.Scheme+"://"+req.URL.Host)
		}
		if before, _, _ := strings.Cut(uri, "?"); strings.HasPrefix(uri, "/") && before != r.path {
			t.Errorf("path: got %q, net/http %q", r.path, before)
		}
		body, err := io.ReadAll(req.Body)
		if err != nil || r.tooLarge || r.bodyErr != nil {
			return
		}
		if !bytes.Equal(body, r.body) {
			t.Errorf("body: got %q, net/http %q", r.body, body)
		}
	})
}

// FuzzReadChunked checks the chunked-body reader: whatever it takes is
// within the limit and what net/http/httputil's reader reads from the same
// bytes, and any data survives a round trip through httputil's writer.
func FuzzReadChunked(f *testing.F) {
	f.Add([]byte("3;x=y\r\nhel\r\n2\r\nlo\r\n0\r\nTrailer: t\r\n\r\n"), []byte("hello"))
	f.Add([]byte("5\r\nhello\r\n7fffffffffffffff\r\n"), []byte(""))
	f.Add([]byte("1000\r\n"), bytes.Repeat([]byte("x"), 5000))
	f.Fuzz(func(t *testing.T, raw, data []byte) {
		const limit = 4 << 10
		got, err := readChunked(bufio.NewReader(bytes.NewReader(raw)), nil, limit)
		if len(got) > limit {
			t.Fatalf("read %d bytes, over the %d limit", len(got), limit)
		}
		if err == nil {
			want, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(raw)))
			if err == nil && !bytes.Equal(got, want) {
				t.Errorf("chunked %q: got %q, httputil %q", raw, got, want)
			}
		}
		var enc bytes.Buffer
		w := httputil.NewChunkedWriter(&enc)
		w.Write(data)
		w.Close()
		enc.WriteString("\r\n")
		got, err = readChunked(bufio.NewReader(&enc), nil, limit)
		switch {
		case len(data) > limit:
			if err != errTooLarge {
				t.Errorf("%d bytes over a %d limit: got %v, want errTooLarge", len(data), limit, err)
			}
		case err != nil || !bytes.Equal(got, data):
			t.Errorf("round trip of %d bytes: got %d, %v", len(data), len(got), err)
		}
	})
}

// FuzzReadFrame checks the channels' framing: a frame read is within the
// limit and is what follows the doorbells, and any frame survives a round
// trip through writeFrame.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 3, 'a', 'b', 'c'}, []byte("frame"))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, []byte{})
	f.Add([]byte{0x80, 0x80, 0x04, 'x'}, bytes.Repeat([]byte("y"), 300))
	f.Fuzz(func(t *testing.T, raw, data []byte) {
		const limit = 64 << 10
		var buf []byte
		got, err := readFrame(bufio.NewReader(bytes.NewReader(raw)), &buf, limit)
		if err == nil {
			if len(got) > limit {
				t.Fatalf("frame of %d bytes, over the %d limit", len(got), limit)
			}
			// It is what encoding/binary reads after the doorbells.
			rest := bytes.TrimLeft(raw, "\x00")
			n, k := binary.Uvarint(rest)
			if k <= 0 || n != uint64(len(got)) || !bytes.Equal(rest[k:k+int(n)], got) {
				t.Errorf("frame %q read from %q; encoding/binary reads length %d (%d bytes)", got, raw, n, k)
			}
		}
		if len(data) == 0 {
			return // never sent: its length, 0x00, reads as a doorbell
		}
		var enc bytes.Buffer
		bw := bufio.NewWriter(&enc)
		writeFrame(bw, data)
		bw.Flush()
		got, err = readFrame(bufio.NewReader(&enc), &buf, limit)
		switch {
		case len(data) > limit:
			if err != errTooLarge {
				t.Errorf("%d bytes over a %d limit: got %v", len(data), limit, err)
			}
		case err != nil || !bytes.Equal(got, data):
			t.Errorf("round trip of %d bytes: got %d, %v", len(data), len(got), err)
		}
	})
}

// FuzzHostCallFrame checks the host-call channel's request frames: a
// frame naming the running invocation reaches its Host with exactly the
// op and arguments it encodes; anything else is refused with a clean code.
func FuzzHostCallFrame(f *testing.F) {
	f.Add(host.AppendArgs(nil, []byte("req-1"), []byte("kv.get"), host.AppendArgs(nil, []byte("b"), []byte("k"))))
	f.Add(host.AppendArgs(nil, []byte("other"), []byte("kv.get"), nil))
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, frame []byte) {
		in, _, h := fuzzInstance()
		out, err := in.hostCall(frame)
		parts, perr := host.ParseArgs(frame)
		var args [][]byte
		valid := perr == nil && len(parts) == 3 && string(parts[0]) == "req-1"
		if valid {
			args, perr = host.ParseArgs(parts[2])
			valid = perr == nil
		}
		if !valid {
			if err == nil {
				t.Fatalf("frame %q: got %q, want an error", frame, out)
			}
			if c := errs.CodeOf(err); c != errs.BadRequest && c != errs.Conflict {
				t.Errorf("frame %q: code %q, want bad_request or conflict", frame, c)
			}
			return
		}
		if err != nil || string(out) != "r" {
			t.Fatalf("frame %q: got %q, %v", frame, out, err)
		}
		if h.op != string(parts[1]) || len(h.args) != len(args) {
			t.Fatalf("host saw %q %q, frame says %q %q", h.op, h.args, parts[1], args)
		}
		for i := range args {
			if !bytes.Equal(h.args[i], args[i]) {
				t.Fatalf("arg %d: host saw %q, frame says %q", i, h.args[i], args[i])
			}
		}
	})
}

// FuzzShmResult checks the reader of results in the shared memory region,
// which the function writes: whatever it puts in the region's result
// words and area, and on the socket, Mote reads at most the area or the
// limit, copies out exactly the published bytes, and reports a length
// past the area as malformed.
func FuzzShmResult(f *testing.F) {
	f.Add(uint32(1), uint32(5), []byte("hello"), []byte{})
	f.Add(uint32(1), shmOnSocket, []byte{}, []byte{3, 'a', 'b', 'c'})
	f.Add(uint32(1), uint32(shmArea+1), []byte{}, []byte{})
	f.Add(uint32(7), uint32(3), []byte("abc"), []byte{0, 0, 1})
	r, err := newShmRegion()
	if err != nil {
		f.Skipf("no shared memory: %v", err)
	}
	defer r.release()
	r.spin.setWindow(0)
	f.Fuzz(func(t *testing.T, resSeq, resLen uint32, area, sock []byte) {
		const limit = 1 << 10
		area = area[:min(len(area), shmArea)]
		copy(r.mem[shmHeader+shmArea:], area)
		seq := r.seq + 1
		if resSeq == 1 {
			resSeq = seq // the usual case: the function answered
		}
		atomic.StoreUint32(r.word(offResSeq), resSeq)
		atomic.StoreUint32(r.word(offResLen), resLen)
		ch := &invChannel{br: bufio.NewReader(bytes.NewReader(sock)), bw: bufio.NewWriter(io.Discard)}
		got, err := r.invokeShm(ch, []byte("event"), limit)
		if err != nil {
			if resSeq == seq && resLen != shmOnSocket && resLen <= shmArea {
				t.Fatalf("result of %d bytes published: got %v", resLen, err)
			}
			return
		}
		switch {
		case resLen == shmOnSocket:
			if len(got) > limit {
				t.Fatalf("result of %d bytes from the socket, over the %d limit", len(got), limit)
			}
		case resLen > shmArea:
			t.Fatalf("length %d past the area: got %d bytes, want errMalformed", resLen, len(got))
		case !bytes.Equal(got, r.mem[shmHeader+shmArea:shmHeader+shmArea+int(resLen)]):
			t.Fatalf("result: got %d bytes, not the %d published", len(got), resLen)
		}
	})
}
