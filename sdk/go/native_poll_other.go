//go:build !linux && !wasip1

package mote

import (
	"net"
	"time"
)

// pollConn polls only on Linux (the platform process functions run on);
// elsewhere it is the connection itself.
type pollConn struct{ net.Conn }

func newPollConn(c net.Conn, window time.Duration, adaptive bool) *pollConn {
	return &pollConn{Conn: c}
}

// accountCPU is needed only where pollConn polls.
func accountCPU() {}
