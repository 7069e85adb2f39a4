package process

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

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
// where an "error" body is the Runtime API's error JSON. A connection that
// starts with 0x00 0x03 is an invocation channel whose frames travel
// through the instance's shared memory region instead (shm.go).
const (
	hostConnMagic        = 0x00
	hostConnVersion      = 0x01
	invocationChannelV1  = 0x02
	invocationChannelShm = 0x03
)

// demuxListener hands channels to serve and HTTP connections to
// serveHTTP, or, when that is nil, to Accept. It holds at most
// limits.maxConns connections at once, counted from their accept to the
// end of their handler: a connection past the cap is closed at once, not
// left in the kernel's backlog, so a function that hoards connections
// sees its own failures, and its neighbours and Mote see none.
type demuxListener struct {
	net.Listener
	serve     func(*spinConn, *bufio.Reader)
	serveHTTP func(*spinConn, *bufio.Reader)
	limits    connLimits
	conns     chan net.Conn
	done      chan struct{}
	once      sync.Once

	mu   sync.Mutex
	err  error                 // the inner listener's Accept error, once it failed
	open map[net.Conn]struct{} // connections accepted and not yet done, closed with the listener
	wg   sync.WaitGroup
}

// connLimits bounds what connections to one instance's Runtime API hold.
type connLimits struct {
	maxConns int           // open at once; 0: no cap
	first    time.Duration // for a new connection's first byte; 0: none
}

func newDemuxListener(ln net.Listener, serve, serveHTTP func(*spinConn, *bufio.Reader), limits connLimits) *demuxListener {
	d := &demuxListener{Listener: ln, serve: serve, serveHTTP: serveHTTP, limits: limits, conns: make(chan net.Conn), done: make(chan struct{}), open: map[net.Conn]struct{}{}}
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
		if !d.add(c) {
			c.Close()
			continue
		}
		go d.route(c)
	}
}

// add counts c as open, unless the listener is closed or at its cap.
func (d *demuxListener) add(c net.Conn) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	select {
	case <-d.done:
		return false
	default:
	}
	if d.limits.maxConns > 0 && len(d.open) >= d.limits.maxConns {
		return false
	}
	d.open[c] = struct{}{}
	d.wg.Add(1)
	return true
}

// remove forgets c; it is closed by whoever served it.
func (d *demuxListener) remove(c net.Conn) {
	d.mu.Lock()
	delete(d.open, c)
	d.mu.Unlock()
	d.wg.Done()
}

// route reads a connection's first byte to tell the protocols apart.
func (d *demuxListener) route(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	c := newSpinConn(nc, 0) // set per protocol below
	br := bufio.NewReaderSize(c, 16<<10)
	c.expect(d.limits.first) // the handlers call idle
	b, err := br.Peek(1)
	if err != nil {
		c.Close()
		d.remove(nc)
		return
	}
	serve := d.serve
	if b[0] != hostConnMagic {
		if d.serveHTTP == nil {
			c.idle()
			d.remove(nc) // no longer ours to count
			select {
			case d.conns <- &peekedConn{Conn: c, r: br}:
			case <-d.done:
				c.Close()
			}
			return
		}
		serve = d.serveHTTP
	}
	defer func() {
		c.Close()
		d.remove(nc)
	}()
	serve(c, br)
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
func (in *instance) serveHostConn(c *spinConn, br *bufio.Reader) {
	var hdr [2]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return
	}
	c.idle()
	switch hdr[1] {
	case hostConnVersion:
		c.setWindow(spinHostCall)
	case invocationChannelV1:
		c.setWindow(spinResult)
		in.serveInvocations(c, br, nil)
		return
	case invocationChannelShm:
		if in.shm == nil {
			return
		}
		c.setWindow(0) // the region is polled instead
		in.serveInvocations(c, br, in.shm)
		return
	default:
		return
	}
	cfg := &in.m.rt.cfg
	max := uint64(cfg.hostCallLimit())
	bw := bufio.NewWriter(c)
	var buf, out []byte
	for {
		// As on HTTP (serveHTTPConn): idle as long as it likes, then a
		// frame within the body timeout, its buffer grown as it arrives.
		c.idle()
		if cap(buf) > keepBuffer {
			buf = nil
		}
		if br.Buffered() == 0 {
			if _, err := br.Peek(1); err != nil {
				return
			}
		}
		c.expect(cfg.APIBodyTimeout)
		n, err := readFrameLen(br)
		if err != nil {
			return
		}
		var res []byte
		if n <= max {
			frame, rerr := readFrameBody(br, &buf, n)
			if rerr != nil {
				return
			}
			c.idle()
			res, err = in.hostCall(frame)
		} else {
			// Skip the frame (when not absurd), keeping the channel in
			// step, and answer it with a clear error.
			if n > maxDrain {
				return
			}
			if _, derr := io.CopyN(io.Discard, br, int64(n)); derr != nil {
				return
			}
			c.idle()
			err = errs.E(errs.PayloadTooLarge, "host call: arguments of %d bytes are over the %d-byte limit", n, max)
		}
		out = out[:0]
		if err != nil {
			out = host.AppendArgs(out, []byte(errs.CodeOf(err)), []byte(errs.MessageOf(err)))
		} else {
			out = host.AppendArgs(out, nil, res)
		}
		writeFrame(bw, out)
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

// invChannel is an open invocation channel. Invoke, which runs one
// invocation at a time per instance, writes the event and reads the result
// on it itself: handing each event to a goroutine that owns the connection
// and back would cost two goroutine wakeups per invocation, each of which
// may wake an idle thread.
type invChannel struct {
	c     *spinConn
	br    *bufio.Reader
	bw    *bufio.Writer
	shm   *shmRegion // events and results go through it; nil: on the socket
	frame []byte
	body  []byte
	dead  chan struct{} // closed when an invocation found the channel broken
	once  sync.Once
}

func (ch *invChannel) kill() { ch.once.Do(func() { close(ch.dead) }) }

// serveInvocations registers an invocation channel for Invoke and holds it
// open until it breaks, the process exits or the instance closes.
func (in *instance) serveInvocations(c *spinConn, br *bufio.Reader, shm *shmRegion) {
	ch := &invChannel{c: c, br: br, bw: bufio.NewWriter(c), shm: shm, dead: make(chan struct{})}
	if !in.inv.CompareAndSwap(nil, ch) {
		return // one channel per instance
	}
	in.readyOnce.Do(func() { close(in.ready) })
	select {
	case <-ch.dead:
	case <-in.quit:
	case <-in.proc.Done():
	}
	in.inv.CompareAndSwap(ch, nil)
	// Unblock an invocation waiting on the channel; the caller of route
	// closes the connection.
	c.SetDeadline(time.Unix(1, 0))
}

// invokeChannel runs invocation cl over ch. It returns the error that
// ended the exchange early (the caller decides what it means from the
// deadline, the context and the process), or nil with cl finished.
func (in *instance) invokeChannel(ch *invChannel, cl *call) error {
	// The deadline bounds the write too: a function that stops reading
	// must not hold a large event's write past it.
	if err := ch.c.SetDeadline(cl.deadline); err != nil {
		return err
	}
	if done := cl.ctx.Done(); done != nil {
		stop := context.AfterFunc(cl.ctx, func() { ch.c.SetDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	var lenBuf [binary.MaxVarintLen64]byte
	ch.frame = host.AppendArgs(ch.frame[:0], []byte(cl.id),
		strconv.AppendInt(lenBuf[:0:0], cl.deadline.UnixMilli(), 10),
		[]byte(traceID(cl)),
		strconv.AppendInt(nil, int64(cl.ev.Depth), 10),
		cl.ev.Payload)
	max := uint64(in.m.rt.cfg.MaxResponse)
	var body []byte
	var err error
	if ch.shm != nil {
		ch.shm.mu.RLock()
		body, err = ch.shm.invokeShm(ch, ch.frame, max+resultFraming)
		ch.shm.mu.RUnlock()
	} else {
		writeFrame(ch.bw, ch.frame)
		if err := ch.bw.Flush(); err != nil {
			return err
		}
		body, err = readFrame(ch.br, &ch.body, max+resultFraming)
	}
	switch {
	case err == errTooLarge:
		cl.finish(nil, errs.E(errs.FunctionError, "process: response larger than %d bytes", max))
		return err
	case err == errMalformed:
		cl.finish(nil, errs.E(errs.FunctionError, "process: malformed result on the invocation channel"))
		return err
	case err != nil:
		return err
	}
	parts, err := host.ParseArgs(body)
	if err != nil || len(parts) != 3 || string(parts[1]) != cl.id {
		cl.finish(nil, errs.E(errs.FunctionError, "process: malformed result on the invocation channel"))
		return errMalformed
	}
	if len(parts[2]) > int(max) { // the frame may be a little larger: not its body
		cl.finish(nil, errs.E(errs.FunctionError, "process: response larger than %d bytes", max))
		return nil
	}
	out := bytes.Clone(parts[2])
	if cap(ch.body) > keepBuffer {
		ch.body = nil
	}
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
		return errMalformed
	}
	cl.finish(out, ferr)
	return nil
}
