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
// return the peer's bytes, EOF, or the deadline; a late answer stops the
// polling; no polling slot is left taken.
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
	if s.avg > s.max {
		t.Errorf("average wait after a quick answer: got %v, want ≤ %v", s.avg, s.max)
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
	if s.avg <= s.max {
		t.Errorf("average wait after a late answer: got %v, want > %v (no more polling)", s.avg, s.max)
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

// TestSpinConnPollsAgain: after a late answer stopped the polling, a run
// of quick answers brings it back.
func TestSpinConnPollsAgain(t *testing.T) {
	a, b := tcpPair(t)
	s := newSpinConn(a, 200*time.Microsecond)
	buf := make([]byte, 1)
	s.Write([]byte("x"))
	go func() {
		time.Sleep(5 * time.Millisecond)
		b.Write([]byte("y"))
	}()
	if _, err := io.ReadFull(s, buf); err != nil {
		t.Fatal(err)
	}
	if s.avg <= s.max {
		t.Fatalf("average wait after a 5 ms answer: got %v, want > %v", s.avg, s.max)
	}
	go io.Copy(b, b) // echo at once from now on
	for i := 0; i < 60 && s.avg > s.max; i++ {
		s.Write([]byte("x"))
		if _, err := io.ReadFull(s, buf); err != nil {
			t.Fatal(err)
		}
	}
	if s.avg > s.max {
		t.Errorf("average wait after 60 quick answers: got %v, want ≤ %v", s.avg, s.max)
	}
}
