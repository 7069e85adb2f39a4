//go:build !wasip1

package mote

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
)

// apiConn is one keep-alive HTTP/1.1 connection to the Lambda Runtime API.
// The protocol needs four requests and a handful of headers, so a small
// client of its own keeps the warm path to a write and a read per request
// (net/http's client costs more than the rest of an invocation).
type apiConn struct {
	addr string
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
}

// apiResponse is what the loop and Call read from a response.
type apiResponse struct {
	status    int
	requestID string
	deadline  string
	trace     string
	depth     string
	body      []byte
}

func dialAPI(addr string) (*apiConn, error) {
	c := &apiConn{addr: addr}
	return c, c.dial()
}

func (c *apiConn) dial() error {
	if c.conn != nil {
		c.conn.Close()
	}
	conn, err := net.Dial("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("mote: runtime api %s: %w", c.addr, err)
	}
	c.conn = conn
	c.r = bufio.NewReaderSize(conn, 16<<10)
	c.w = bufio.NewWriterSize(conn, 16<<10)
	return nil
}

// do sends one request and reads its response, redialling once when a
// kept-alive connection turns out to be closed.
func (c *apiConn) do(method, path, requestID string, body []byte) (*apiResponse, error) {
	resp, err := c.roundTrip(method, path, requestID, body)
	if err != nil && (errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)) {
		if err := c.dial(); err != nil {
			return nil, err
		}
		resp, err = c.roundTrip(method, path, requestID, body)
	}
	return resp, err
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe")
}

func (c *apiConn) roundTrip(method, path, requestID string, body []byte) (*apiResponse, error) {
	w := c.w
	w.WriteString(method)
	w.WriteByte(' ')
	w.WriteString(path)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(c.addr)
	if requestID != "" {
		w.WriteString("\r\nLambda-Runtime-Aws-Request-Id: ")
		w.WriteString(requestID)
	}
	if method == "POST" {
		w.WriteString("\r\nContent-Type: application/octet-stream\r\nContent-Length: ")
		w.WriteString(strconv.Itoa(len(body)))
	}
	w.WriteString("\r\n\r\n")
	w.Write(body)
	if err := w.Flush(); err != nil {
		return nil, err
	}
	return c.readResponse()
}

func (c *apiConn) readResponse() (*apiResponse, error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return nil, fmt.Errorf("mote: bad status line %q", line)
	}
	resp := &apiResponse{}
	resp.status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return nil, fmt.Errorf("mote: bad status line %q", line)
	}
	length, chunked := -1, false
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch {
		case asciiEqualFold(k, "Content-Length"):
			length, err = strconv.Atoi(string(v))
			if err != nil {
				return nil, fmt.Errorf("mote: bad content length %q", v)
			}
		case asciiEqualFold(k, "Transfer-Encoding"):
			chunked = bytes.EqualFold(v, []byte("chunked"))
		case asciiEqualFold(k, "Lambda-Runtime-Aws-Request-Id"):
			resp.requestID = string(v)
		case asciiEqualFold(k, "Lambda-Runtime-Deadline-Ms"):
			resp.deadline = string(v)
		case asciiEqualFold(k, "Lambda-Runtime-Trace-Id"):
			resp.trace = string(v)
		case asciiEqualFold(k, "Mote-Depth"):
			resp.depth = string(v)
		}
	}
	switch {
	case chunked:
		resp.body, err = c.readChunked()
	case length >= 0:
		resp.body = make([]byte, length)
		_, err = io.ReadFull(c.r, resp.body)
	}
	return resp, err
}

func (c *apiConn) readChunked() ([]byte, error) {
	var body []byte
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		size, _, _ := strings.Cut(strings.TrimSpace(line), ";")
		n, err := strconv.ParseInt(size, 16, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("mote: bad chunk size %q", line)
		}
		if n == 0 {
			// Trailers, then the blank line.
			for {
				l, err := c.r.ReadString('\n')
				if err != nil {
					return nil, err
				}
				if strings.TrimSpace(l) == "" {
					return body, nil
				}
			}
		}
		start := len(body)
		body = append(body, make([]byte, n)...)
		if _, err := io.ReadFull(c.r, body[start:]); err != nil {
			return nil, err
		}
		if _, err := c.r.Discard(2); err != nil { // CRLF
			return nil, err
		}
	}
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
