package process

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/host"
	"github.com/mote-run/mote/internal/runtime"
)

// TestDemuxListener: HTTP and host-call channels share one port; a
// channel's frames are answered in order; closing the listener closes the
// channels.
func TestDemuxListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	echo := func(c *spinConn, br *bufio.Reader) {
		var hdr [2]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil || hdr[1] != hostConnVersion {
			return
		}
		for {
			n, err := binary.ReadUvarint(br)
			if err != nil {
				return
			}
			b := make([]byte, n)
			if _, err := io.ReadFull(br, b); err != nil {
				return
			}
			c.Write(binary.AppendUvarint(nil, n))
			c.Write(b)
		}
	}
	d := newDemuxListener(inner, echo, nil, connLimits{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "http ok") })}
	go srv.Serve(d)
	defer srv.Close()
	addr := inner.Addr().String()

	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "http ok" {
		t.Errorf("HTTP through the demux: got %q", b)
	}

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte{hostConnMagic, hostConnVersion})
	br := bufio.NewReader(c)
	for _, msg := range []string{"one", "two", strings.Repeat("x", 100_000)} {
		c.Write(binary.AppendUvarint(nil, uint64(len(msg))))
		c.Write([]byte(msg))
		n, err := binary.ReadUvarint(br)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, n)
		io.ReadFull(br, got)
		if string(got) != msg {
			t.Errorf("frame: got %d bytes, want %d", len(got), len(msg))
		}
	}
	srv.Close() // closes the demux, which closes the channel
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err == nil {
		t.Error("host-call channel still open after the listener closed")
	}
}

// TestHostCallFrames checks the instance side: frames for an invocation
// that is not running, malformed frames, and errors with their codes.
func TestHostCallFrames(t *testing.T) {
	in := &instance{}
	for _, tc := range []struct {
		name  string
		frame []byte
		code  errs.Code
	}{
		{"not a list", []byte{0xff}, errs.BadRequest},
		{"two parts", host.AppendArgs(nil, []byte("id"), []byte("op")), errs.BadRequest},
		{"no invocation", host.AppendArgs(nil, []byte("id"), []byte("kv.get"), nil), errs.Conflict},
	} {
		_, err := in.hostCall(tc.frame)
		if errs.CodeOf(err) != tc.code {
			t.Errorf("%s: got %v, want %s", tc.name, err, tc.code)
		}
	}
}

// TestInvocationChannelFraming: a function that answers an event with a
// result for another invocation, or garbage, fails that invocation
// cleanly; tested through a fake function speaking the channel.
func TestInvocationChannelFraming(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func(id string) []byte
		code   errs.Code
	}{
		{"ok", func(id string) []byte { return host.AppendArgs(nil, []byte("ok"), []byte(id), []byte("out")) }, ""},
		{"error", func(id string) []byte {
			return host.AppendArgs(nil, []byte("error"), []byte(id), []byte(`{"errorMessage":"bad","errorType":"E"}`))
		}, errs.FunctionError},
		{"wrong id", func(id string) []byte { return host.AppendArgs(nil, []byte("ok"), []byte("other"), nil) }, errs.FunctionError},
		{"unknown kind", func(id string) []byte { return host.AppendArgs(nil, []byte("maybe"), []byte(id), nil) }, errs.FunctionError},
		{"garbage", func(id string) []byte { return []byte{0xff} }, errs.FunctionError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, cl := channelInstance(t)
			server, client := net.Pipe()
			sc := newSpinConn(server, spinResult)
			ch := &invChannel{c: sc, br: bufio.NewReader(sc), bw: bufio.NewWriter(sc), dead: make(chan struct{})}
			go in.invokeChannel(ch, cl)
			br := bufio.NewReader(client)
			n, err := binary.ReadUvarint(br)
			if err != nil {
				t.Fatal(err)
			}
			ev := make([]byte, n)
			io.ReadFull(br, ev)
			parts, err := host.ParseArgs(ev)
			if err != nil || len(parts) != 5 || string(parts[0]) != cl.id || string(parts[4]) != "payload" {
				t.Fatalf("event frame: %q %v", parts, err)
			}
			a := tc.answer(cl.id)
			go func() {
				client.Write(binary.AppendUvarint(nil, uint64(len(a))))
				client.Write(a)
			}()
			select {
			case <-cl.done:
				if errs.CodeOf(cl.err) != tc.code {
					t.Errorf("got %v, want %q", cl.err, tc.code)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("invocation never finished")
			}
			close(in.quit)
			client.Close()
		})
	}
}

// channelInstance is an instance with just what invokeChannel uses, and
// one call for it.
func channelInstance(t *testing.T) (*instance, *call) {
	t.Helper()
	rt := &Runtime{cfg: Config{MaxResponse: 1 << 20}}
	in := &instance{m: &module{rt: rt}, quit: make(chan struct{}), ready: make(chan struct{})}
	cl := &call{id: "req-1", ev: &runtime.Event{Payload: []byte("payload")}, ctx: context.Background(), deadline: time.Now().Add(time.Minute), done: make(chan struct{})}
	return in, cl
}
