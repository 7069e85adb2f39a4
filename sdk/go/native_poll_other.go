//go:build !linux && !wasip1

package mote

import (
	"bufio"
	"net"
	"time"
)

// pollConn polls only on Linux (the platform process functions run on);
// elsewhere it is the connection itself.
type pollConn struct{ net.Conn }

func newPollConn(c net.Conn, window time.Duration) *pollConn {
	return &pollConn{Conn: c}
}

// accountCPU is needed only where pollConn polls.
func accountCPU() {}

// shmChannel exists only on Linux; elsewhere the invocation channel runs
// over its socket alone.
type shmChannel struct{}

func openShm() *shmChannel { return nil }

func (s *shmChannel) next(r *bufio.Reader) ([]byte, error) { panic("unreachable") }

func (s *shmChannel) answer(w *bufio.Writer, frame []byte) error { panic("unreachable") }
