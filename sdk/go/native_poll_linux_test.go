//go:build linux

package mote

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestPollConn: a read after a write returns the peer's bytes whether they
// come within the polling window or after it, and late answers stop the
// polling.
func TestPollConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 1)
		for i := 0; ; i++ {
			if _, err := c.Read(buf); err != nil {
				return
			}
			if i > 0 { // the first answer is immediate, the rest late
				time.Sleep(2 * time.Millisecond)
			}
			c.Write(buf)
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := newPollConn(c, 8*time.Microsecond)
	buf := make([]byte, 1)
	for i := 0; i < 8; i++ {
		p.Write([]byte{byte('a' + i)})
		if _, err := io.ReadFull(p, buf); err != nil || buf[0] != byte('a'+i) {
			t.Fatalf("read %d: got %q, %v, want %q", i, buf, err, 'a'+i)
		}
	}
	if p.w.hits >= 128 {
		t.Errorf("hit average after 7 late answers: got %d, want < 128 (not polling)", p.w.hits)
	}
}
