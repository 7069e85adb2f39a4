package process

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// tcpPair is a connected loopback TCP pair.
func tcpPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan net.Conn)
	go func() {
		c, _ := ln.Accept()
		done <- c
	}()
	a, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b = <-done
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestSpinConn: reads after a write poll, and whatever the timing they
// return the peer's bytes, EOF, or the deadline; the window halves on a
// miss and comes back on a hit; no polling slot is left taken.
func TestSpinConn(t *testing.T) {
	a, b := tcpPair(t)
	s := newSpinConn(a, 200*time.Microsecond)
	buf := make([]byte, 16)

	// Hit: the answer is already there when the read starts.
	s.Write([]byte("ping"))
	b.Write([]byte("pong"))
	time.Sleep(10 * time.Millisecond)
	n, err := s.Read(buf)
	if err != nil || string(buf[:n]) != "pong" {
		t.Fatalf("read: got %q, %v, want pong", buf[:n], err)
	}
	if s.cur != s.max {
		t.Errorf("window after a hit: got %v, want %v", s.cur, s.max)
	}

	// Miss: the answer comes after the window; the read parks and still
	// gets it.
	s.Write([]byte("ping"))
	go func() {
		time.Sleep(20 * time.Millisecond)
		b.Write([]byte("late"))
	}()
	n, err = s.Read(buf)
	if err != nil || string(buf[:n]) != "late" {
		t.Fatalf("read: got %q, %v, want late", buf[:n], err)
	}
	if got, want := s.cur, s.max/2; got != want {
		t.Errorf("window after a miss: got %v, want %v", got, want)
	}

	// Deadline while parked.
	s.Write([]byte("ping"))
	s.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := s.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read past the deadline: got %v, want a deadline error", err)
	}
	s.SetReadDeadline(time.Time{})

	// EOF (b reads what a sent first, so its close is a FIN, not a reset).
	s.Write([]byte("ping"))
	if _, err := io.ReadFull(b, make([]byte, 16)); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := s.Read(buf); err != io.EOF {
		t.Errorf("read after the peer closed: got %v, want EOF", err)
	}
	if n := spinners.Load(); n != 0 {
		t.Errorf("polling slots taken after the reads: got %d, want 0", n)
	}
}

// TestSpinConnWindowToZero: a peer that never answers within the window
// stops the polling, which is retried every spinRetry reads.
func TestSpinConnWindowToZero(t *testing.T) {
	a, b := tcpPair(t)
	s := newSpinConn(a, 8*time.Microsecond)
	buf := make([]byte, 4)
	for i := 0; i < 6; i++ {
		s.Write([]byte("x"))
		go func() {
			time.Sleep(2 * time.Millisecond)
			b.Write([]byte("y"))
		}()
		if _, err := io.ReadFull(s, buf[:1]); err != nil {
			t.Fatal(err)
		}
	}
	if s.cur != 0 {
		t.Errorf("window after repeated misses: got %v, want 0", s.cur)
	}
}
