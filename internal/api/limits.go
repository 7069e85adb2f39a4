package api

import (
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Limits bounds what clients' connections can make the API server hold.
// Without them, ~20,000 idle connections used up the process's file
// descriptors and stalled the API: each was held until its client left.
type Limits struct {
	// MaxConns caps the connections open at once, fast path and net/http
	// together. Default: 8192, or half the process's file descriptor
	// limit when that is lower (functions and storage need the rest).
	MaxConns int
	// ReadHeaderTimeout bounds a request's header (on the fast path, its
	// header and body) from its first byte. Default: 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a connection that waits this long for its next
	// request, or for its first. Default: 2 minutes, longer than the 90s
	// that Go's and most HTTP clients keep an idle connection, so the
	// client, not the server, usually closes it, and no request races a
	// close.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header on net/http's side (the
	// fast path hands anything over 8 KiB to it). Default: 64 KiB.
	MaxHeaderBytes int
}

// Defaults for Limits.
const (
	DefaultMaxConns          = 8192
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultMaxHeaderBytes    = 64 << 10
)

// WithDefaults returns l with its zero fields set to the defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultMaxConns
		var rl syscall.Rlimit
		if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur/2 < uint64(l.MaxConns) {
			l.MaxConns = max(int(rl.Cur/2), 64)
		}
	}
	if l.ReadHeaderTimeout <= 0 {
		l.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return l
}

// HTTPServer returns the net/http server for the gateway, under lim.
func (s *Server) HTTPServer(lim Limits) *http.Server {
	lim = lim.WithDefaults()
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// ListenLimited starts the fast path on ln as Listen does, holding at
// most lim.MaxConns connections and with lim's timeouts; pass the result
// to the Serve of HTTPServer(lim).
func (s *Server) ListenLimited(ln net.Listener, lim Limits) *FastListener {
	lim = lim.WithDefaults()
	return s.Listen(LimitListener(ln, lim.MaxConns, s.log), FastConfig{ReadHeaderTimeout: lim.ReadHeaderTimeout, IdleTimeout: lim.IdleTimeout})
}

// LimitListener returns a listener that holds at most n connections open
// at once. A connection past the cap is accepted and closed at once,
// rather than left in the kernel's backlog: its client learns at once
// that the server is full and can retry, instead of hanging behind the
// connections queued before it (which the backlog would hand over later,
// often after their clients gave up); and the backlog stays empty, so a
// freed place goes to a client that is still there. Refusals are logged
// at most once a minute, with their count.
func LimitListener(ln net.Listener, n int, log *slog.Logger) net.Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &limitListener{Listener: ln, max: int64(n), log: log}
}

type limitListener struct {
	net.Listener
	max     int64
	log     *slog.Logger
	open    atomic.Int64
	refused atomic.Int64 // since the last warning
	warned  atomic.Int64 // when the last warning was logged, Unix ns
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &limitConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		c.Close()
		l.refuse()
	}
}

func (l *limitListener) refuse() {
	n := l.refused.Add(1)
	now := time.Now().UnixNano()
	last := l.warned.Load()
	if now-last < int64(time.Minute) || !l.warned.CompareAndSwap(last, now) {
		return
	}
	l.refused.Add(-n)
	l.log.Warn("api: connection limit reached: closed new connections", "limit", l.max, "closed", n)
}

// limitConn gives its place back when it is closed, once.
type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}
