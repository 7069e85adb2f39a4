//go:build !wasip1

package mote

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"os"
	"strconv"
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
	pc := newPollConn(conn, eventPoll, true)
	r, w := bufio.NewReader(pc), bufio.NewWriter(pc)
	if _, err := w.Write([]byte{0x00, 0x02}); err != nil || w.Flush() != nil {
		conn.Close()
		return false
	}
	var lenBuf [binary.MaxVarintLen64]byte
	var frame []byte
	for {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			if err == io.EOF {
				os.Exit(0) // the platform closed the channel: this instance is done
			}
			fatal("mote: invocation channel: " + err.Error())
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			fatal("mote: invocation channel: " + err.Error())
		}
		parts, ok := parseArgs(buf)
		if !ok || len(parts) != 5 {
			fatal("mote: invocation channel: malformed event")
		}
		ctx := &Context{InvocationID: string(parts[0]), Function: function, Version: version}
		if ms, err := strconv.ParseInt(string(parts[1]), 10, 64); err == nil {
			ctx.Deadline = time.UnixMilli(ms)
		}
		ctx.RootID, ctx.ParentID = parseTrace(string(parts[2]))
		if ctx.RootID == "" {
			ctx.RootID = ctx.InvocationID
		}
		ctx.Depth, _ = strconv.Atoi(string(parts[3]))

		setCurrent(ctx.InvocationID)
		out, herr, panicked := runNative(ctx, parts[4])
		setCurrent("")
		kind := "ok"
		if herr != nil {
			typ := "FunctionError"
			if panicked {
				typ = "Runtime.Panic"
			}
			out, _ = json.Marshal(lambdaError{Message: herr.Error(), Type: typ})
			kind = "error"
		}
		frame = appendArgs(frame[:0], []byte(kind), parts[0], out)
		accountCPU() // the handler's time, into the counter Mote reads after the result
		w.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(frame)))])
		w.Write(frame)
		if err := w.Flush(); err != nil {
			fatal("mote: invocation channel: " + err.Error())
		}
		if panicked {
			os.Exit(2)
		}
	}
}
