//go:build !wasip1

package mote

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"time"
)

// onChannel is set while the function serves Mote's invocation channel:
// only there may a response be streamed over the Runtime API beside it
// (Mote takes the streamed response as the result and ignores the
// channel's empty one; a Runtime API loop would post a second result).
var onChannel atomic.Bool

// streamContentType is Lambda's streamed HTTP response: a JSON prelude,
// eight NUL bytes, then the body.
const streamContentType = "application/vnd.awslambda.http-integration-response"

// startStream opens a streamed response for the invocation ctx and writes
// prelude as its first bytes, or returns nil where streaming is not
// possible (then the response is sent whole at the end).
func startStream(ctx *Context, prelude []byte) io.WriteCloser {
	if ctx == nil || !onChannel.Load() || apiAddr == "" {
		return nil
	}
	c, err := net.Dial("tcp", apiAddr)
	if err != nil {
		return nil
	}
	if !ctx.Deadline.IsZero() {
		c.SetDeadline(ctx.Deadline)
	}
	s := &chunkedPost{c: c, bw: bufio.NewWriterSize(c, 16<<10)}
	fmt.Fprintf(s.bw, "POST %s%s/response HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nLambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n\r\n",
		pathInvPrefix, ctx.InvocationID, apiAddr, streamContentType)
	if _, err := s.Write(prelude); err != nil {
		c.Close()
		return nil
	}
	return s
}

// chunkedPost is a request body sent chunk by chunk, each flushed.
type chunkedPost struct {
	c   net.Conn
	bw  *bufio.Writer
	err error
}

func (s *chunkedPost) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	s.bw.WriteString(strconv.FormatInt(int64(len(p)), 16))
	s.bw.WriteString("\r\n")
	s.bw.Write(p)
	s.bw.WriteString("\r\n")
	if s.err = s.bw.Flush(); s.err != nil {
		return 0, s.err
	}
	return len(p), nil
}

// Close ends the body and waits for the platform's answer.
func (s *chunkedPost) Close() error {
	defer s.c.Close()
	if s.err != nil {
		return s.err
	}
	s.bw.WriteString("0\r\n\r\n")
	if err := s.bw.Flush(); err != nil {
		return err
	}
	s.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(s.c).ReadString('\n')
	if err != nil {
		return err
	}
	if len(line) < 12 || line[9:12] != "202" {
		return fmt.Errorf("mote: streamed response refused: %q", line)
	}
	return nil
}
