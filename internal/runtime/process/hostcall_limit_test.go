package process

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/host"
)

// sizeHost answers every host call with the total size of its arguments.
type sizeHost struct{}

func (sizeHost) Call(_ context.Context, op string, args [][]byte) ([]byte, error) {
	n := 0
	for _, a := range args {
		n += len(a)
	}
	return []byte(strconv.Itoa(n)), nil
}

// TestOversizedHostCallAnswered: a host call larger than a response but
// within MaxHostCall is served (obj.put takes 8 MiB, a response 6 MiB);
// one over the limit is answered "payload too large" on the Runtime API
// and on the host-call channel alike, its body read so that the sender
// sees the answer rather than a reset connection, and the channel goes
// on serving. Before the fix the 1.5 MiB call was refused and the 3 MiB
// one reset the connection (a broken pipe in the Python SDK).
func TestOversizedHostCallAnswered(t *testing.T) {
	const callLimit = 2 << 20
	_, cl, addr := limitedAPI(t, Config{MaxResponse: 1 << 20, MaxHostCall: callLimit, MaxAPIConns: 8, APIHeaderTimeout: time.Minute, APIBodyTimeout: time.Minute})
	cl.ev.Host = sizeHost{}

	post := func(size int) (*http.Response, string, error) {
		c := dial(t, addr)
		body := host.AppendArgs(nil, []byte(strings.Repeat("x", size)))
		werr := make(chan error, 1)
		go func() {
			_, err := fmt.Fprintf(c, "POST %skv.put HTTP/1.1\r\n%s: req-1\r\nContent-Length: %d\r\n\r\n", pathCall, hdrRequestID, len(body))
			if err == nil {
				_, err = c.Write(body)
			}
			werr <- err
		}()
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return nil, "", err
		}
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b), <-werr
	}
	resp, body, err := post(1<<20 + 512<<10)
	if err != nil || resp.StatusCode != http.StatusOK || body != strconv.Itoa(1<<20+512<<10) {
		t.Fatalf("a 1.5 MiB host call (limit 2 MiB): got %v %q, %v; want 200 and its size", resp, body, err)
	}
	resp, body, err = post(3 << 20)
	if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, string(errs.PayloadTooLarge)) {
		t.Fatalf("a 3 MiB host call (limit 2 MiB): got %v %q, %v; want 413 payload_too_large, its body read", resp, body, err)
	}

	c := dial(t, addr)
	bw := bufio.NewWriter(c)
	br := bufio.NewReader(c)
	bw.Write([]byte{hostConnMagic, hostConnVersion})
	call := func(size int) [][]byte {
		t.Helper()
		writeFrame(bw, host.AppendArgs(nil, []byte("req-1"), []byte("kv.put"), host.AppendArgs(nil, make([]byte, size))))
		if err := bw.Flush(); err != nil {
			t.Fatalf("writing a %d-byte call: %v", size, err)
		}
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		var buf []byte
		frame, err := readFrame(br, &buf, 1<<20)
		if err != nil {
			t.Fatalf("reading the answer to a %d-byte call: %v", size, err)
		}
		parts, err := host.ParseArgs(frame)
		if err != nil || len(parts) != 2 {
			t.Fatalf("answer to a %d-byte call: %q, %v", size, frame, err)
		}
		return parts
	}
	if got := call(3 << 20); string(got[0]) != string(errs.PayloadTooLarge) {
		t.Fatalf("a 3 MiB call on the channel: got code %q (%q), want %s", got[0], got[1], errs.PayloadTooLarge)
	}
	if got := call(1 << 10); len(got[0]) != 0 || string(got[1]) != strconv.Itoa(1<<10) {
		t.Fatalf("a call after the refused one: got %q %q, want its size", got[0], got[1])
	}
}
