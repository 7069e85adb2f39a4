package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// redisClient is a minimal RESP2 client: one connection, one command at a
// time (no pipelining), which is how a function would use a remote store
// for dependent reads and writes.
type redisClient struct {
	addr string
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	line []byte
}

// redisConns keeps one connection per address across the invocations a
// warm instance serves, as a real function would.
var redisConns = map[string]*redisClient{}

func redisConn(addr string) (*redisClient, error) {
	if addr == "" {
		return nil, errors.New("redis backend needs the redis address")
	}
	if c := redisConns[addr]; c != nil {
		return c, nil
	}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &redisClient{addr: addr, conn: conn, r: bufio.NewReader(conn), w: bufio.NewWriter(conn)}
	redisConns[addr] = c
	return c, nil
}

func (c *redisClient) bulk(b []byte) {
	c.w.WriteByte('$')
	c.w.WriteString(strconv.Itoa(len(b)))
	c.w.WriteString("\r\n")
	c.w.Write(b)
	c.w.WriteString("\r\n")
}

func (c *redisClient) command(args ...[]byte) error {
	c.w.WriteByte('*')
	c.w.WriteString(strconv.Itoa(len(args)))
	c.w.WriteString("\r\n")
	for _, a := range args {
		c.bulk(a)
	}
	return c.w.Flush()
}

// reply reads one reply: a simple string, an error or a bulk string (nil
// when absent). A broken connection is dropped so the next call redials.
func (c *redisClient) reply() (val []byte, found bool, err error) {
	defer func() {
		if err != nil {
			c.conn.Close()
			delete(redisConns, c.addr)
		}
	}()
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return nil, false, err
	}
	line = bytes.TrimSuffix(line, []byte("\r\n"))
	if len(line) == 0 {
		return nil, false, errors.New("redis: empty reply")
	}
	switch line[0] {
	case '+':
		return nil, true, nil
	case '-':
		return nil, false, fmt.Errorf("redis: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(string(line[1:]))
		if err != nil {
			return nil, false, fmt.Errorf("redis: bad bulk length %q", line)
		}
		if n < 0 {
			return nil, false, nil
		}
		buf := make([]byte, n+2)
		if _, err := readFull(c.r, buf); err != nil {
			return nil, false, err
		}
		return buf[:n], true, nil
	}
	return nil, false, fmt.Errorf("redis: unexpected reply %q", line)
}

func readFull(r *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

var (
	cmdGet = []byte("GET")
	cmdSet = []byte("SET")
)

func (c *redisClient) get(key string) (bool, error) {
	if err := c.command(cmdGet, []byte(key)); err != nil {
		return false, err
	}
	_, found, err := c.reply()
	return found, err
}

func (c *redisClient) put(key string, v []byte) error {
	if err := c.command(cmdSet, []byte(key), v); err != nil {
		return err
	}
	_, _, err := c.reply()
	return err
}
