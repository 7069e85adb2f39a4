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

// pollWindow is how long a read polls. With adaptive set it polls only
// while polling pays: it keeps a moving average of how long answers took
// (whether they came while polling or after parking) and polls only while
// that average is within max. A function invoked rarely stops polling for
// its events at the first long wait, and a run of short waits brings the
// polling back.
type pollWindow struct {
	max      time.Duration
	avg      time.Duration
	adaptive bool
}

func newPollConn(c net.Conn, window time.Duration, adaptive bool) *pollConn {
	p := &pollConn{Conn: c, w: pollWindow{max: window, adaptive: adaptive}}
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
	var spin time.Duration
	if !w.adaptive || w.avg <= w.max {
		spin = w.max
	}
	start := time.Now()
	n, err := pollRead(p.raw, b, spin)
	w.avg += (time.Since(start) - w.avg) / 8
	return n, err
}

// pollRead reads into b, polling for up to spin before waiting in the
// netpoller.
func pollRead(raw syscall.RawConn, b []byte, spin time.Duration) (n int, err error) {
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
		return 0, rerr
	case err != nil:
		return 0, err
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}
