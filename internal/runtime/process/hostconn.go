package process

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"sync"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/host"
)

// Host calls over HTTP cost a request parse and a response write each,
// which is most of a KV get's time from a process function. The Runtime
// API port therefore also speaks a framed protocol for host calls: a
// connection that starts with the byte 0x00 (never the first byte of an
// HTTP request) followed by a version byte is a host-call channel. Then,
// repeatedly:
//
//	request:  uvarint(n) || host.AppendArgs(requestID, op, encodedArgs)   (n bytes)
//	response: uvarint(n) || host.AppendArgs(code, data)                    (n bytes)
//
// code is empty on success (data is the result) or an error code (data is
// the message). SDKs that do not speak it use POST /2018-06-01/mote/call/{op}.
//
// A connection that starts with 0x00 0x02 is instead an invocation channel,
// Mote's faster form of the Runtime API's next/response loop for SDKs that
// speak it (the Go SDK):
//
//	event (from Mote):     uvarint(n) || list(request_id, deadline_ms, trace, depth, payload)
//	result (from function): uvarint(n) || list("ok" | "error", request_id, body)
//
// where an "error" body is the Runtime API's error JSON.
const (
	hostConnMagic       = 0x00
	hostConnVersion     = 0x01
	invocationChannelV1 = 0x02
)

// demuxListener hands HTTP connections to the Runtime API server and
// host-call channels to serve.
type demuxListener struct {
	net.Listener
	serve func(net.Conn, *bufio.Reader)
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once

	mu   sync.Mutex
	err  error                 // the inner listener's Accept error, once it failed
	open map[net.Conn]struct{} // host-call channels, closed with the listener
	wg   sync.WaitGroup
}

func newDemuxListener(ln net.Listener, serve func(net.Conn, *bufio.Reader)) *demuxListener {
	d := &demuxListener{Listener: ln, serve: serve, conns: make(chan net.Conn), done: make(chan struct{}), open: map[net.Conn]struct{}{}}
	go d.loop()
	return d
}

func (d *demuxListener) loop() {
	for {
		c, err := d.Listener.Accept()
		if err != nil {
			d.mu.Lock()
			d.err = err
			d.mu.Unlock()
			d.Close()
			return
		}
		go d.route(c)
	}
}

// route reads a connection's first byte to tell the protocols apart.
func (d *demuxListener) route(c net.Conn) {
	br := bufio.NewReader(c)
	b, err := br.Peek(1)
	if err != nil {
		c.Close()
		return
	}
	if b[0] != hostConnMagic {
		select {
		case d.conns <- &peekedConn{Conn: c, r: br}:
		case <-d.done:
			c.Close()
		}
		return
	}
	d.mu.Lock()
	select {
	case <-d.done:
		d.mu.Unlock()
		c.Close()
		return
	default:
	}
	d.open[c] = struct{}{}
	d.wg.Add(1)
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.open, c)
		d.mu.Unlock()
		c.Close()
		d.wg.Done()
	}()
	d.serve(c, br)
}

// Accept returns the next HTTP connection.
func (d *demuxListener) Accept() (net.Conn, error) {
	select {
	case c := <-d.conns:
		return c, nil
	case <-d.done:
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.err != nil {
			return nil, d.err
		}
		return nil, net.ErrClosed
	}
}

// Close stops accepting, closes the host-call channels and waits for
// their handlers.
func (d *demuxListener) Close() error {
	var err error
	d.once.Do(func() {
		d.mu.Lock()
		close(d.done)
		for c := range d.open {
			c.Close()
		}
		d.mu.Unlock()
		err = d.Listener.Close()
	})
	return err
}

// peekedConn is a connection whose first bytes sit in r.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// serveHostConn serves one host-call channel until it closes.
func (in *instance) serveHostConn(c net.Conn, br *bufio.Reader) {
	var hdr [2]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return
	}
	switch hdr[1] {
	case hostConnVersion:
	case invocationChannelV1:
		in.serveInvocations(c, br)
		return
	default:
		return
	}
	max := in.m.rt.cfg.MaxResponse
	bw := bufio.NewWriter(c)
	var buf, out []byte
	var lenBuf [binary.MaxVarintLen64]byte
	for {
		n, err := binary.ReadUvarint(br)
		if err != nil || n > uint64(max) {
			return
		}
		if uint64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(br, buf); err != nil {
			return
		}
		res, err := in.hostCall(buf)
		out = out[:0]
		if err != nil {
			out = host.AppendArgs(out, []byte(errs.CodeOf(err)), []byte(errs.MessageOf(err)))
		} else {
			out = host.AppendArgs(out, nil, res)
		}
		bw.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(out)))])
		bw.Write(out)
		if err := bw.Flush(); err != nil {
			return
		}
	}
}

// hostCall runs one framed host call for the invocation it names.
func (in *instance) hostCall(frame []byte) ([]byte, error) {
	parts, err := host.ParseArgs(frame)
	if err != nil || len(parts) != 3 {
		return nil, errs.E(errs.BadRequest, "host call: malformed frame")
	}
	cur := in.cur.Load()
	if cur == nil || cur.id != string(parts[0]) {
		return nil, errs.E(errs.Conflict, "host call: no invocation %q is running", parts[0])
	}
	args, err := host.ParseArgs(parts[2])
	if err != nil {
		return nil, err
	}
	return cur.ev.Host.Call(cur.ctx, string(parts[1]), args)
}

// serveInvocations hands events to the function and takes its results over
// an invocation channel, until the channel or the instance closes.
func (in *instance) serveInvocations(c net.Conn, br *bufio.Reader) {
	in.readyOnce.Do(func() { close(in.ready) })
	max := uint64(in.m.rt.cfg.MaxResponse)
	bw := bufio.NewWriter(c)
	var frame, body []byte
	var lenBuf [binary.MaxVarintLen64]byte
	for {
		var cl *call
		select {
		case cl = <-in.next:
		case <-in.quit:
			return
		}
		frame = host.AppendArgs(frame[:0], []byte(cl.id),
			strconv.AppendInt(nil, cl.deadline.UnixMilli(), 10),
			[]byte(traceID(cl)),
			strconv.AppendInt(nil, int64(cl.ev.Depth), 10),
			cl.ev.Payload)
		bw.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(frame)))])
		bw.Write(frame)
		if err := bw.Flush(); err != nil {
			cl.finish(nil, errs.Wrap(errs.FunctionError, err, "process: lost the function's invocation channel"))
			return
		}
		n, err := binary.ReadUvarint(br)
		if err != nil {
			cl.finish(nil, errs.Wrap(errs.FunctionError, err, "process: the function closed its invocation channel"))
			return
		}
		if n > max+256 {
			cl.finish(nil, errs.E(errs.FunctionError, "process: response larger than %d bytes", max))
			return
		}
		if uint64(cap(body)) < n {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := io.ReadFull(br, body); err != nil {
			cl.finish(nil, errs.Wrap(errs.FunctionError, err, "process: reading the function's response failed"))
			return
		}
		parts, err := host.ParseArgs(body)
		if err != nil || len(parts) != 3 || string(parts[1]) != cl.id {
			cl.finish(nil, errs.E(errs.FunctionError, "process: malformed result on the invocation channel"))
			return
		}
		out := bytes.Clone(parts[2])
		var ferr error
		switch string(parts[0]) {
		case "ok":
		case "error":
			ferr = errs.E(errs.FunctionError, "%s", lambdaErrorText(out))
			if len(out) == 0 {
				out = nil
			}
		default:
			cl.finish(nil, errs.E(errs.FunctionError, "process: unknown result kind on the invocation channel"))
			return
		}
		cl.finish(out, ferr)
	}
}
