package api_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/api"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/system"
)

// serveLimited serves a gateway with function g under lim, as mote serve
// does, and returns its address.
func serveLimited(t *testing.T, lim api.Limits) string {
	t.Helper()
	modules(t)
	ctx := context.Background()
	sys := openSystem(t, system.Config{DataDir: t.TempDir(), MaxPayload: fastMaxPayload})
	t.Cleanup(func() { sys.Shutdown(ctx) })
	if _, err := sys.Deploy(ctx, "g", registry.Config{}, bytes.NewReader(guest)); err != nil {
		t.Fatal(err)
	}
	gw := api.New(api.Config{System: sys})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := gw.HTTPServer(lim)
	fl := gw.ListenLimited(ln, lim)
	go srv.Serve(fl)
	t.Cleanup(func() {
		srv.Close()
		fl.Shutdown(context.Background())
	})
	return ln.Addr().String()
}

// closedWithin reports whether the server closes c within d, reading and
// discarding what it sends first.
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// TestLimitsConnCap: with the cap's worth of idle connections held, a
// new connection is closed unanswered; once the idle timeout has closed
// the idle ones, the API answers again. Before, the API had no cap (it
// stalled at the file descriptor limit, ~20,000 connections) and
// net/http no idle timeout.
func TestLimitsConnCap(t *testing.T) {
	const limit = 8
	const idle = 300 * time.Millisecond
	addr := serveLimited(t, api.Limits{MaxConns: limit, IdleTimeout: idle, ReadHeaderTimeout: idle})
	var held []net.Conn
	for i := 0; i < limit; i++ {
		held = append(held, dial(t, addr))
	}
	// Half of them handed to net/http (a request the fast path does not
	// take), then idle: net/http's idle timeout must close them too.
	for _, c := range held[:limit/2] {
		io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n")
		if r, err := readResponse(t, bufio.NewReader(c)); err != nil || r.body != "ok\n" {
			t.Fatalf("healthz: got %v, %v", r, err)
		}
	}
	extra := dial(t, addr)
	io.WriteString(extra, post("/fn/g", "echo:refused"))
	if !closedWithin(extra, idle/2) {
		t.Fatalf("a connection past the cap of %d was not closed at once", limit)
	}
	for i, c := range held {
		if !closedWithin(c, 5*time.Second) {
			t.Fatalf("idle connection %d not closed after the %v idle timeout", i, idle)
		}
	}
	c := dial(t, addr)
	io.WriteString(c, post("/fn/g", "echo:served"))
	if r, err := readResponse(t, bufio.NewReader(c)); err != nil || r.body != "served" {
		t.Fatalf("after the idle connections closed: got %v, %v; want served", r, err)
	}
}

// TestLimitsMaxHeaderBytes: net/http refuses a header over the limit.
func TestLimitsMaxHeaderBytes(t *testing.T) {
	addr := serveLimited(t, api.Limits{MaxHeaderBytes: 4 << 10})
	c := dial(t, addr)
	io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: h\r\nX-Big: "+strings.Repeat("a", 64<<10)+"\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("a 64 KiB header: got %v, %v; want 431", resp, err)
	}
}

// TestLimitListenerHammer: connections opened and closed from many
// goroutines leave the count where it started; none past the cap is kept.
func TestLimitListenerHammer(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const limit = 4
	ln := api.LimitListener(inner, limit, nil)
	defer ln.Close()
	open := make(chan struct{}, 100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if len(open) >= limit {
				t.Errorf("accepted a connection with %d open, past the cap of %d", len(open), limit)
			}
			open <- struct{}{}
			go func() {
				c.Read(make([]byte, 1)) // until the client closes
				<-open
				c.Close()
				c.Close() // a second Close gives nothing back twice
			}()
		}
	}()
	done := make(chan struct{})
	for g := 0; g < 8; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 50; i++ {
				c, err := net.Dial("tcp", inner.Addr().String())
				if err != nil {
					t.Error(err)
					return
				}
				c.Close()
			}
		}()
	}
	for g := 0; g < 8; g++ {
		<-done
	}
	// Every place comes back: the cap's worth of connections is served.
	deadline := time.Now().Add(5 * time.Second)
	for served := 0; served < limit; {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err = c.Read(make([]byte, 1))
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			served++ // held open: accepted
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d places came back", served, limit)
		}
	}
}
