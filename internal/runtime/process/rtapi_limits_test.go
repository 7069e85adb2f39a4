package process

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/mote-run/mote/internal/errs"
)

// limitedAPI serves an instance's Runtime API (HTTP and host-call
// channels, as NewInstance does) under cfg's limits, with invocation
// req-1 running, and returns its address.
func limitedAPI(t *testing.T, cfg Config) (*instance, *call, string) {
	t.Helper()
	in, cl := channelInstance(t)
	in.m.rt.cfg = cfg
	in.cur.Store(cl)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := newDemuxListener(ln, in.serveHostConn, in.serveHTTPConn, connLimits{maxConns: cfg.MaxAPIConns, first: cfg.APIHeaderTimeout})
	t.Cleanup(func() { close(in.quit); d.Close() })
	return in, cl, ln.Addr().String()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByServer reports whether the server closes c within 5s, reading
// and discarding whatever it sends before.
func closedByServer(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// TestAppendFullAllocatesOnlyWhatArrives: a body that declares 64 MiB
// and sends 10 bytes costs well under 1 MiB; whole bodies read back
// intact however they are split.
func TestAppendFullAllocatesOnlyWhatArrives(t *testing.T) {
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	b, err := appendFull(strings.NewReader("0123456789"), nil, 64<<20)
	runtime.ReadMemStats(&ms1)
	if err != io.ErrUnexpectedEOF || string(b) != "0123456789" {
		t.Errorf("short body: got %q, %v; want the 10 bytes and ErrUnexpectedEOF", b, err)
	}
	if got := ms1.TotalAlloc - ms0.TotalAlloc; got > 1<<20 {
		t.Errorf("allocated for 10 bytes of a declared 64 MiB: got %d bytes, want under 1 MiB", got)
	}
	for _, n := range []int{0, 1, growStep - 1, growStep + 1, 3*growStep + 7, 1 << 20} {
		want := bytes.Repeat([]byte("abcdefg"), n/7+1)[:n]
		got, err := appendFull(iotest.HalfReader(bytes.NewReader(want)), []byte("pre"), n)
		if err != nil || !bytes.Equal(got[3:], want) || string(got[:3]) != "pre" {
			t.Errorf("n=%d: got %d bytes, %v; want %d", n, len(got)-3, err, n)
		}
	}
}

// TestRuntimeAPIHeapBounded: connections that declare the largest body
// the server takes and then send nothing do not grow its heap by their
// declared sizes (64 x 1 MiB before the fix).
func TestRuntimeAPIHeapBounded(t *testing.T) {
	const conns, declared = 64, 1 << 20
	_, _, addr := limitedAPI(t, Config{MaxResponse: declared, MaxAPIConns: conns, APIHeaderTimeout: time.Minute, APIBodyTimeout: time.Minute})
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapInuse
	for i := 0; i < conns; i++ {
		c := dial(t, addr)
		io.WriteString(c, "POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1048576\r\n\r\n")
		// The server answers 100 Continue just before it reads the body.
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusContinue {
			t.Fatalf("connection %d: got %v, %v; want 100 Continue", i, resp, err)
		}
	}
	const bound = 16 << 20 // buffers and goroutines: ~40 KiB a connection
	for i := 0; i < 5; i++ {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if grew := int64(ms.HeapInuse) - int64(before); grew > bound {
			t.Fatalf("heap in use grew by %d MiB for %d connections declaring %d KiB each; want under %d MiB",
				grew>>20, conns, declared>>10, bound>>20)
		}
		time.Sleep(20 * time.Millisecond) // the last allocations may lag the 100s a moment
	}
}

// TestRuntimeAPIConnCap: connections past the cap are closed at once,
// HTTP and host-call channels alike; one that ends frees its place.
func TestRuntimeAPIConnCap(t *testing.T) {
	const limit = 4
	_, _, addr := limitedAPI(t, Config{MaxResponse: 1 << 20, MaxAPIConns: limit, APIHeaderTimeout: time.Minute, APIBodyTimeout: time.Minute})
	var held []net.Conn
	for i := 0; i < limit; i++ {
		held = append(held, dial(t, addr)) // idle: they say nothing
	}
	extra := dial(t, addr)
	io.WriteString(extra, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n\r\n")
	if !closedByServer(extra) {
		t.Fatalf("a connection past the cap of %d was not closed", limit)
	}
	frames := dial(t, addr)
	frames.Write([]byte{hostConnMagic, hostConnVersion})
	if !closedByServer(frames) {
		t.Fatalf("a host-call channel past the cap of %d was not closed", limit)
	}
	held[0].Close()
	// Its handler sees the close and frees the place: a new connection
	// is served, soon.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := dial(t, addr)
		io.WriteString(c, "POST /2018-06-01/runtime/invocation/other/response HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil && resp.StatusCode == http.StatusBadRequest {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection served after one of the %d closed: %v", limit, err)
		}
		c.Close()
	}
}

// TestRuntimeAPISlowSenders: a connection that says nothing, headers or
// a body or a host-call frame that stall, and a slowloris that trickles
// header bytes are closed after the timeouts; a connection idle between
// requests is not.
func TestRuntimeAPISlowSenders(t *testing.T) {
	const timeout = 100 * time.Millisecond
	cfg := Config{MaxResponse: 1 << 20, MaxAPIConns: 16, APIHeaderTimeout: timeout, APIBodyTimeout: timeout}
	for _, tc := range []struct {
		name, send string
		trickle    bool // then one more header byte every 20ms
	}{
		{"silent", "", false},
		{"stalled headers", "POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nHost: a", false},
		{"stalled body", "POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc", false},
		{"stalled chunk", "POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n64\r\nabc", false},
		{"stalled frame", string([]byte{hostConnMagic, hostConnVersion, 0xe8, 0x07}) + "abc", false},
		{"slowloris", "POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nX: ", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, cl, addr := limitedAPI(t, cfg)
			c := dial(t, addr)
			io.WriteString(c, tc.send)
			if tc.trickle {
				stop := make(chan struct{})
				defer close(stop)
				go func() {
					for {
						select {
						case <-stop:
							return
						case <-time.After(20 * time.Millisecond):
							if _, err := c.Write([]byte("a")); err != nil {
								return
							}
						}
					}
				}()
			}
			start := time.Now()
			if !closedByServer(c) {
				t.Fatalf("not closed within 5s; the timeouts are %v", timeout)
			}
			t.Logf("closed after %v", time.Since(start))
			if strings.Contains(tc.name, "body") || strings.Contains(tc.name, "chunk") {
				<-cl.done
				if errs.CodeOf(cl.err) != errs.FunctionError {
					t.Errorf("the invocation: got %v, want a function error", cl.err)
				}
			}
		})
	}
	t.Run("idle between requests", func(t *testing.T) {
		_, _, addr := limitedAPI(t, cfg)
		c := dial(t, addr)
		br := bufio.NewReader(c)
		for i := 0; i < 2; i++ {
			if i == 1 {
				time.Sleep(3 * timeout) // idle: no deadline runs
			}
			io.WriteString(c, "POST /2018-06-01/runtime/invocation/other/response HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("request %d: got %v, %v; want 400", i, resp, err)
			}
			io.Copy(io.Discard, resp.Body)
		}
	})
	t.Run("idle host-call channel", func(t *testing.T) {
		_, _, addr := limitedAPI(t, cfg)
		c := dial(t, addr)
		c.Write([]byte{hostConnMagic, hostConnVersion})
		time.Sleep(3 * timeout)
		frame := binary.AppendUvarint(nil, 1)
		c.Write(append(frame, 0xff)) // malformed args: answered with an error frame
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := readFrame(bufio.NewReader(c), new([]byte), 1<<20); err != nil {
			t.Fatalf("idle host-call channel: %v", err)
		}
	})
}
