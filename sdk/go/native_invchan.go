//go:build !wasip1

package mote

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"os"
	"time"
)

// serveChannel is Start's loop on Mote: events and results go over an
// invocation channel on the Runtime API port (a connection that starts
// with 0x00 0x02; docs/process-functions.md) instead of one HTTP exchange
// each way. It returns false, having done nothing, if the channel cannot
// be opened, so Start can fall back to the Runtime API.
// eventPoll is how long the function polls for its next event after
// answering one, before parking (pollConn). Under steady traffic the next
// event usually arrives within it and saves the function's wakeup; the
// poll happens only while events have recently come within the window
// (pollWindow), so a function invoked rarely does not poll. The window starts after the result is
// written, i.e. between invocations: Mote reads the cgroup's CPU counter
// for the next invocation just before handing over its event, so at most
// the few microseconds between that read and the event's arrival are
// billed to an invocation.
const eventPoll = 200 * time.Microsecond

func serveChannel() bool {
	conn, err := net.Dial("tcp", apiAddr)
	if err != nil {
		return false
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	// With the shared memory region, the region is polled and the socket
	// only waited on; without it, the socket is polled.
	shm := openShm()
	kind := byte(0x02)
	var rw io.ReadWriter = newPollConn(conn, eventPoll)
	if shm != nil {
		kind, rw = 0x03, conn
	}
	r, w := bufio.NewReader(rw), bufio.NewWriter(rw)
	if _, err := w.Write([]byte{0x00, kind}); err != nil || w.Flush() != nil {
		conn.Close()
		return false
	}
	onChannel.Store(true)
	var frame []byte
	for {
		var buf []byte
		var err error
		if shm != nil {
			buf, err = shm.next(r)
		} else {
			buf, err = readFrame(r)
		}
		if err != nil {
			if err == io.EOF {
				os.Exit(0) // the platform closed the channel: this instance is done
			}
			fatal("mote: invocation channel: " + err.Error())
		}
		parts, ok := parseArgs(buf)
		if !ok || len(parts) != 5 {
			fatal("mote: invocation channel: malformed event")
		}
		ctx := newContext(string(parts[0]), string(parts[1]), string(parts[2]), string(parts[3]))
		out, failed, panicked := serveEvent(ctx, parts[4])
		kind := "ok"
		if failed {
			kind = "error"
		}
		frame = appendArgs(frame[:0], []byte(kind), parts[0], out)
		accountCPU() // the handler's time, into the counter Mote reads after the result
		if shm != nil {
			err = shm.answer(w, frame)
		} else {
			writeFrame(w, frame)
			err = w.Flush()
		}
		if err != nil {
			fatal("mote: invocation channel: " + err.Error())
		}
		if panicked {
			os.Exit(2)
		}
	}
}

// readFrame reads a uvarint-length-prefixed frame, skipping the 0x00
// doorbell bytes that may precede it on a channel with a shared region.
func readFrame(r *bufio.Reader) ([]byte, error) {
	for {
		b, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		if b != 0 {
			r.UnreadByte()
			break
		}
	}
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// writeFrame writes frame with its uvarint length prefix to w.
func writeFrame(w *bufio.Writer, frame []byte) {
	var lenBuf [binary.MaxVarintLen64]byte
	w.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(frame)))])
	w.Write(frame)
}
