//go:build linux

package mote

import (
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// pollConn is a connection whose first read after each write may poll the
// socket with non-blocking reads for a short window before parking in Go's
// netpoller. Parking costs two scheduler wakeups when the bytes arrive
// (the netpoller's thread, then the goroutine's), which on a VM is tens of
// microseconds: more than a host call or a short invocation. Polling is
// used only on Mote's channels (docs/process-functions.md, "Polling").
type pollConn struct {
	net.Conn
	raw   syscall.RawConn
	armed atomic.Bool
	w     pollWindow
}

// pollWindow is how long a read polls. With adaptive set, a poll that
// times out halves the window (down to none) and one that finds data
// restores it, so a function invoked rarely stops polling for its events;
// a window of none is retried every pollRetry reads.
type pollWindow struct {
	max, cur time.Duration
	adaptive bool
	idle     int // reads since the window reached zero
}

const pollRetry = 32

func newPollConn(c net.Conn, window time.Duration, adaptive bool) *pollConn {
	p := &pollConn{Conn: c, w: pollWindow{max: window, cur: window, adaptive: adaptive}}
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			p.raw = raw
		}
	}
	return p
}

func (p *pollConn) Write(b []byte) (int, error) {
	p.armed.Store(true)
	return p.Conn.Write(b)
}

func (p *pollConn) Read(b []byte) (int, error) {
	if p.raw == nil || len(b) == 0 || !p.armed.Swap(false) {
		return p.Conn.Read(b)
	}
	w := &p.w
	spin := w.cur
	if spin == 0 {
		if w.idle++; w.idle < pollRetry {
			return p.Conn.Read(b)
		}
		w.idle, spin = 0, w.max
	}
	n, hit, err := pollRead(p.raw, b, spin)
	if w.adaptive {
		switch {
		case hit:
			w.cur = w.max
		case w.cur < 2*time.Microsecond:
			w.cur = 0
		default:
			w.cur /= 2
		}
	}
	return n, err
}

// pollRead reads into b, polling for up to spin before waiting in the
// netpoller; hit reports whether the data came while polling.
func pollRead(raw syscall.RawConn, b []byte, spin time.Duration) (n int, hit bool, err error) {
	start := time.Now()
	polling := true
	rerr := raw.Read(func(fd uintptr) bool {
		for {
			n, err = syscall.Read(int(fd), b)
			switch err {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				if polling && time.Since(start) < spin {
					continue
				}
				polling = false
				return false
			}
			return true
		}
	})
	switch {
	case rerr != nil:
		return 0, false, rerr
	case err != nil:
		return 0, false, err
	case n == 0:
		return 0, false, io.EOF
	}
	return n, polling, nil
}
