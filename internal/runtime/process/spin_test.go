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
// polling less likely; no polling slot is left taken.
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
	if s.spin.hits != 256 {
		t.Errorf("hit average after a quick answer: got %d, want 256", s.spin.hits)
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
	if s.spin.hits >= 256 {
		t.Errorf("hit average after a late answer: got %d, want < 256", s.spin.hits)
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

// TestSpinConnStopsAndProbes: late answers stop the polling; probes
// bring it back once answers are quick again. (Late answers come 10 ms
// after a 2 ms window; quick ones are in the socket before the read.)
func TestSpinConnStopsAndProbes(t *testing.T) {
	a, b := tcpPair(t)
	s := newSpinConn(a, 2*time.Millisecond)
	roundTrip := func(late bool) {
		t.Helper()
		s.Write([]byte("x"))
		if late {
			time.AfterFunc(10*time.Millisecond, func() { b.Write([]byte("y")) })
		} else {
			b.Write([]byte("y"))
		}
		var got [1]byte
		if _, err := io.ReadFull(s, got[:]); err != nil || got[0] != 'y' {
			t.Fatalf("read: got %q, %v", got, err)
		}
	}
	for i := 0; i < 8; i++ {
		roundTrip(true)
	}
	if s.spin.hits >= 128 {
		t.Fatalf("hit average after 8 late answers: got %d, want < 128 (not polling)", s.spin.hits)
	}
	for i := 0; i < 4*spinProbe && s.spin.hits < 128; i++ {
		roundTrip(false)
	}
	if s.spin.hits < 128 {
		t.Errorf("hit average after quick answers: got %d, want ≥ 128 (polling again)", s.spin.hits)
	}
}
