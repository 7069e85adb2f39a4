//go:build !wasip1

package mote

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// A host call from a native function goes over a framed channel on the
// Runtime API port rather than as an HTTP request: a connection that
// starts with 0x00 and a version byte, then request and response frames
// (docs/process-functions.md, "Host calls"). It costs one write and one
// read on a kept-open connection.

// hostCallPoll is how long a host call polls for its answer before
// parking (pollConn): Mote answers a KV get in a few microseconds, well
// inside it. The polling is the function's CPU during its invocation, so
// it is billed: at most this much per host call, less when calls keep
// taking longer (pollWindow stops polling while answers are slow).
const hostCallPoll = 50 * time.Microsecond

type hostConn struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	buf  []byte
}

var (
	hostConnsMu sync.Mutex
	hostConns   []*hostConn
)

func dialHostConn() (*hostConn, error) {
	if apiAddr == "" {
		return nil, errors.New("mote: AWS_LAMBDA_RUNTIME_API is not set")
	}
	c, err := net.Dial("tcp", apiAddr)
	if err != nil {
		return nil, fmt.Errorf("mote: host channel %s: %w", apiAddr, err)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	pc := newPollConn(c, hostCallPoll)
	h := &hostConn{conn: c, r: bufio.NewReader(pc), w: bufio.NewWriter(pc)}
	h.w.Write([]byte{0x00, 0x01})
	return h, nil
}

func takeHostConn() (*hostConn, error) {
	hostConnsMu.Lock()
	if n := len(hostConns); n > 0 {
		h := hostConns[n-1]
		hostConns = hostConns[:n-1]
		hostConnsMu.Unlock()
		return h, nil
	}
	hostConnsMu.Unlock()
	return dialHostConn()
}

func putHostConn(h *hostConn) {
	hostConnsMu.Lock()
	if len(hostConns) < 8 {
		hostConns = append(hostConns, h)
		h = nil
	}
	hostConnsMu.Unlock()
	if h != nil {
		h.conn.Close()
	}
}

// call sends one request frame and reads its response: the result, or an
// *Error with the host's code.
func (h *hostConn) call(id, op string, args [][]byte) ([]byte, error) {
	h.buf = appendArgs(h.buf[:0], args...)
	frame := make([]byte, 0, 16+len(id)+len(op)+len(h.buf))
	frame = appendArgs(frame, []byte(id), []byte(op), h.buf)
	writeFrame(h.w, frame)
	if err := h.w.Flush(); err != nil {
		return nil, err
	}
	resp, err := readFrame(h.r)
	if err != nil {
		return nil, err
	}
	parts, ok := parseArgs(resp)
	if !ok || len(parts) != 2 {
		return nil, errors.New("malformed response frame")
	}
	if len(parts[0]) > 0 {
		return nil, &Error{Code: string(parts[0]), Message: string(parts[1])}
	}
	return parts[1], nil
}
