package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/httpwire"
	"github.com/mote-run/mote/internal/system"
)

// The fast path serves the hot request shape, a plain synchronous
// invocation (POST /fn/NAME, or the AWS Lambda Invoke API's POST
// /2015-03-31/functions/NAME/invocations, over HTTP/1.1 with a small
// Content-Length body), without net/http's per-request machinery: it reads
// requests from the connection itself and writes the bytes net/http would
// write for the same outcome. The first request on a connection that has
// any other shape (or that it has any doubt about) is handed, with every
// byte already read, to net/http through the listener's Accept, and
// net/http serves the rest of that connection.
//
// Over TLS (`mote serve --tls-cert`, a listener from tls.NewListener) the
// fast path works the same on the decrypted stream: it completes the
// handshake itself, within the header timeout, and a connection handed to
// net/http stays on that TLS session (as HTTP/1.1: the server offers
// nothing else).

// FastConfig configures the fast path's timeouts.
type FastConfig struct {
	// ReadHeaderTimeout bounds the time from a request's first byte to its
	// last (header and body): 10s by default, as `mote serve` sets it for
	// net/http. A request takes up to a second less (deadlines are moved
	// at most once a second per connection).
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a connection that waits this long for its next
	// request: 5 minutes by default.
	IdleTimeout time.Duration
}

func (c *FastConfig) withDefaults() FastConfig {
	d := *c
	if d.ReadHeaderTimeout <= 0 {
		d.ReadHeaderTimeout = 10 * time.Second
	}
	if d.IdleTimeout <= 0 {
		d.IdleTimeout = 5 * time.Minute
	}
	return d
}

const (
	// fastBufSize is the per-connection read buffer: a request whose header
	// and body do not fit is handed to net/http.
	fastBufSize = 8 << 10
	// deadlineSlack is how far a read deadline may be early, so that a
	// busy connection moves its deadline once a second, not per request.
	deadlineSlack = time.Second
	// bufferBeforeChunking is net/http's: a body written at once and
	// longer than this goes out chunked, a shorter one with its length.
	bufferBeforeChunking = 2048
	// maxKeptOut is the largest output buffer a connection keeps between
	// responses.
	maxKeptOut = 64 << 10
)

// FastListener wraps the gateway's listener. Its Accept returns only the
// connections the fast path hands to net/http; pass it to http.Server.Serve.
type FastListener struct {
	s   *Server
	ln  net.Listener
	cfg FastConfig
	// maxPayload is the system's payload limit, fixed for its life: read
	// once, not copied out of its config per request.
	maxPayload int64
	ctx        context.Context // ends on a hard shutdown
	cancel     context.CancelFunc

	handoff  chan net.Conn
	done     chan struct{} // closed by Close
	closeErr error         // why Accept fails, set before done closes
	once     sync.Once
	draining atomic.Bool
	wg       sync.WaitGroup // the accept loop and the connections it serves

	mu    sync.Mutex
	conns map[*fastConn]struct{}
}

// Listen starts the fast path on ln. The caller passes the result to
// http.Server.Serve and calls its Shutdown when the server shuts down.
func (s *Server) Listen(ln net.Listener, cfg FastConfig) *FastListener {
	ctx, cancel := context.WithCancel(context.Background())
	l := &FastListener{
		s: s, ln: ln, cfg: cfg.withDefaults(), maxPayload: s.sys.Config().MaxPayload, ctx: ctx, cancel: cancel,
		handoff: make(chan net.Conn), done: make(chan struct{}),
		conns: map[*fastConn]struct{}{},
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

var _ net.Listener = (*FastListener)(nil)

// Accept returns the next connection handed to net/http.
func (l *FastListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.handoff:
		return c, nil
	case <-l.done:
		return nil, l.closeErr
	}
}

// Addr is the listener's address.
func (l *FastListener) Addr() net.Addr { return l.ln.Addr() }

// Close stops accepting connections and starts draining: idle fast-path
// connections are closed, busy ones close after their current response.
// http.Server.Shutdown calls it.
func (l *FastListener) Close() error {
	return l.closeWith(net.ErrClosed)
}

func (l *FastListener) closeWith(err error) error {
	var cerr error
	l.once.Do(func() {
		l.closeErr = err
		l.draining.Store(true)
		close(l.done)
		cerr = l.ln.Close()
		l.mu.Lock()
		for c := range l.conns {
			if c.state.CompareAndSwap(stateIdle, stateClosed) {
				c.rwc.Close()
			}
		}
		l.mu.Unlock()
	})
	return cerr
}

// Shutdown closes the listener and waits for in-flight fast-path requests
// to finish. When ctx ends first, it cancels their invocations, closes
// every connection and returns ctx's error.
func (l *FastListener) Shutdown(ctx context.Context) error {
	l.Close()
	idle := make(chan struct{})
	go func() { l.wg.Wait(); close(idle) }()
	select {
	case <-idle:
		l.cancel()
		return nil
	case <-ctx.Done():
		l.cancel()
		l.mu.Lock()
		for c := range l.conns {
			c.rwc.Close()
		}
		l.mu.Unlock()
		return ctx.Err()
	}
}

func (l *FastListener) acceptLoop() {
	defer l.wg.Done()
	var delay time.Duration
	for {
		rwc, err := l.ln.Accept()
		if err != nil {
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() && !l.draining.Load() {
				// As net/http does on EMFILE and the like: back off, retry.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(delay):
					continue
				case <-l.done:
					return
				}
			}
			l.closeWith(err)
			return
		}
		delay = 0
		c := &fastConn{l: l, rwc: rwc, br: bufio.NewReaderSize(rwc, fastBufSize)}
		l.mu.Lock()
		if l.draining.Load() {
			l.mu.Unlock()
			rwc.Close()
			return
		}
		l.conns[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go c.serve()
	}
}

// Connection states, for closing idle connections on Close.
const (
	stateIdle int32 = iota
	stateActive
	stateClosed
)

type fastConn struct {
	l        *FastListener
	rwc      net.Conn
	br       *bufio.Reader
	state    atomic.Int32
	deadline time.Time          // the read deadline last set
	out      []byte             // responses not yet written
	name     string             // the last function name, reused while it repeats
	rec      *httpwire.Recorder // error responses, built by the handlers' code
}

// serve runs the connection until it closes or is handed to net/http.
func (c *fastConn) serve() {
	l := c.l
	handed := false
	defer func() {
		l.mu.Lock()
		delete(l.conns, c)
		l.mu.Unlock()
		if !handed {
			c.flush()
			c.rwc.Close()
		}
		l.wg.Done()
	}()
	if tc, ok := c.rwc.(*tls.Conn); ok && !c.handshake(tc) {
		return
	}
	for {
		if c.br.Buffered() == 0 {
			if !c.flush() || !c.waitRequest() {
				return
			}
		}
		req, verdict := c.readRequest()
		switch verdict {
		case readClose:
			return
		case readHandoff:
			handed = c.handoff()
			return
		}
		c.serveInvoke(req)
		if l.draining.Load() {
			return
		}
	}
}

// handshake completes a TLS connection's handshake within the header's
// timeout. Left to the first read, a handshake that timed out would fail
// every later read at once, and waitRequest would spin on it until the
// idle timeout.
func (c *fastConn) handshake(tc *tls.Conn) bool {
	tc.SetDeadline(time.Now().Add(c.l.cfg.ReadHeaderTimeout))
	if err := tc.Handshake(); err != nil {
		return false
	}
	tc.SetDeadline(time.Time{})
	return true
}

// waitRequest waits for the first byte of the next request, closing the
// connection after the idle timeout or on Close.
func (c *fastConn) waitRequest() bool {
	c.state.Store(stateIdle)
	if c.l.draining.Load() {
		return false
	}
	start := time.Now()
	// The wait's deadline is the header's (when shorter), renewed until
	// the idle timeout: on a busy connection the header's deadline set
	// below is then already in place, and is not moved once per request.
	for {
		now := c.setDeadline(time.Time{}, min(c.l.cfg.IdleTimeout, c.l.cfg.ReadHeaderTimeout))
		_, err := c.br.Peek(1)
		if err == nil {
			break
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || now.Sub(start) >= c.l.cfg.IdleTimeout {
			return false
		}
	}
	if !c.state.CompareAndSwap(stateIdle, stateActive) {
		return false // closed by Close
	}
	// The header's time starts with its first byte.
	c.setDeadline(time.Time{}, c.l.cfg.ReadHeaderTimeout)
	return true
}

// setDeadline moves the read deadline to d from now when it is more than
// deadlineSlack earlier or at all later than that. It returns now.
func (c *fastConn) setDeadline(now time.Time, d time.Duration) time.Time {
	if now.IsZero() {
		now = time.Now()
	}
	want := now.Add(d)
	if c.deadline.Before(want.Add(-deadlineSlack)) || c.deadline.After(want) {
		c.rwc.SetReadDeadline(want)
		c.deadline = want
	}
	return now
}

// flush writes the responses not yet written.
func (c *fastConn) flush() bool {
	if len(c.out) == 0 {
		return true
	}
	_, err := c.rwc.Write(c.out)
	c.out = c.out[:0]
	if cap(c.out) > maxKeptOut {
		c.out = nil // a large response's buffer is not kept for the next
	}
	return err == nil
}

// handoff passes the connection, with the bytes already buffered, to
// net/http.
func (c *fastConn) handoff() bool {
	if !c.flush() {
		return false
	}
	c.rwc.SetReadDeadline(time.Time{})
	buffered, _ := c.br.Peek(c.br.Buffered())
	hc := &handedConn{Conn: c.rwc, buf: bytes.Clone(buffered)}
	select {
	case c.l.handoff <- hc:
		return true
	case <-c.l.done:
		return false
	}
}

type readVerdict int

const (
	readOK readVerdict = iota
	readHandoff
	readClose
)

type fastRequest struct {
	name    string
	payload []byte
	lambda  bool // the Lambda Invoke API's route, not /fn/
}

// readRequest reads the next request if it has the fast path's shape.
// Otherwise it consumes nothing and says to hand the connection off (or to
// close it, on a timeout or a connection gone with nothing to answer).
func (c *fastConn) readRequest() (fastRequest, readVerdict) {
	var end int
	for {
		buf, _ := c.br.Peek(c.br.Buffered())
		if end = bytes.Index(buf, []byte("\r\n\r\n")); end >= 0 {
			end += 4
			break
		}
		if len(buf) >= fastBufSize || bareLF(buf) {
			// A header ending in a bare LF is valid HTTP/1.1 that never
			// shows the CRLF CRLF waited for here: net/http reads it.
			return fastRequest{}, readHandoff
		}
		if v := c.fill(len(buf) + 1); v != readOK {
			return fastRequest{}, v
		}
	}
	buf, _ := c.br.Peek(end)
	h, ok := parseFastHeader(buf, c.l.maxPayload)
	n := h.length
	if !ok || end+n > fastBufSize {
		return fastRequest{}, readHandoff
	}
	// As ServeHTTP: a request without a credential that allows it is
	// net/http's, which answers 401 or 403.
	name := c.intern(h.name)
	if !c.l.s.fastInvokeAllowed(h.auth, h.host, name) {
		return fastRequest{}, readHandoff
	}
	if !h.lambda && c.l.s.special(name) {
		return fastRequest{}, readHandoff // an HTTP function: httpfn.go
	}
	if v := c.fill(end + n); v != readOK {
		return fastRequest{}, v
	}
	buf, _ = c.br.Peek(end + n)
	req := fastRequest{name: name, payload: bytes.Clone(buf[end:]), lambda: h.lambda}
	if req.payload == nil {
		req.payload = []byte{}
	}
	c.br.Discard(end + n)
	return req, readOK
}

// bareLF reports whether b has a line feed not preceded by a carriage
// return.
func bareLF(b []byte) bool {
	for i, ch := range b {
		if ch == '\n' && (i == 0 || b[i-1] != '\r') {
			return true
		}
	}
	return false
}

// fill waits until n bytes are buffered. A connection that ends with a
// partial request goes to net/http, which answers it as it would; one that
// times out is closed (net/http closes it without an answer too).
func (c *fastConn) fill(n int) readVerdict {
	if c.br.Buffered() >= n {
		return readOK
	}
	if !c.flush() {
		return readClose
	}
	_, err := c.br.Peek(n)
	if err == nil {
		return readOK
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return readClose
	}
	if c.br.Buffered() == 0 {
		return readClose
	}
	return readHandoff
}

func (c *fastConn) intern(name []byte) string {
	if string(name) != c.name {
		c.name = string(name)
	}
	return c.name
}

// fastHeader is what the fast path takes from a request's header.
type fastHeader struct {
	name   []byte // the function's
	lambda bool   // the Lambda Invoke API's route, not /fn/
	length int    // the body's
	auth   []byte // the Authorization header's value; nil when absent
	host   []byte // the Host header's value
}

// parseFastHeader checks that a request's header block (ending in CRLF
// CRLF) has the fast path's shape, with a body of at most maxPayload bytes
// and at most one Authorization header, whose value it returns for the
// caller to check (fastInvokeAllowed). Any doubt answers ok=false:
// net/http then serves the request.
func parseFastHeader(b []byte, maxPayload int64) (h fastHeader, ok bool) {
	line, rest, _ := bytes.Cut(b, []byte("\r\n"))
	target, found := bytes.CutPrefix(line, []byte("POST "))
	if !found {
		return fastHeader{}, false
	}
	target, found = bytes.CutSuffix(target, []byte(" HTTP/1.1"))
	if !found {
		return fastHeader{}, false
	}
	h.name, h.lambda, ok = fastTarget(target)
	if !ok {
		return fastHeader{}, false
	}
	hosts, lengths, invTypes, auths := 0, 0, 0, 0
	h.length = -1
	for {
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return fastHeader{}, false
		}
		key, val := line[:colon], bytes.Trim(line[colon+1:], " \t")
		if !validToken(key) || !validValue(val) {
			return fastHeader{}, false
		}
		switch {
		case httpwire.EqualFold(key, "host"):
			hosts++
			if !validHost(val) {
				return fastHeader{}, false
			}
			h.host = val
		case httpwire.EqualFold(key, "origin"), httpwire.EqualFold(key, "sec-fetch-site"):
			// A browser's request: net/http applies the cross-origin
			// checks (localOnly) where they matter.
			return fastHeader{}, false
		case httpwire.EqualFold(key, "content-length"):
			lengths++
			if h.length, ok = parseLength(val); !ok {
				return fastHeader{}, false
			}
		case httpwire.EqualFold(key, "connection"):
			if !httpwire.EqualFold(val, "keep-alive") {
				return fastHeader{}, false
			}
		case httpwire.EqualFold(key, "authorization"):
			// Counted, not tested for nil: an empty value trims to nil,
			// and net/http would read that first one.
			auths++
			if auths > 1 {
				return fastHeader{}, false
			}
			h.auth = val
		case h.lambda && httpwire.EqualFold(key, headerLambdaInvocationType):
			// Only a synchronous invocation, said once: Event and
			// DryRun (and anything else) are net/http's.
			invTypes++
			if invTypes > 1 || string(val) != "RequestResponse" {
				return fastHeader{}, false
			}
		case httpwire.EqualFold(key, "transfer-encoding"), httpwire.EqualFold(key, "expect"),
			httpwire.EqualFold(key, "upgrade"), httpwire.EqualFold(key, HeaderAsync),
			httpwire.EqualFold(key, "trailer"), httpwire.EqualFold(key, "te"),
			httpwire.EqualFold(key, "traceparent"): // its trace context is net/http's to read
			return fastHeader{}, false
		}
	}
	if hosts != 1 || lengths != 1 || int64(h.length) > maxPayload {
		return fastHeader{}, false
	}
	return h, true
}

// fastTarget takes a raw request target that routes to an invocation:
// /fn/NAME[/...], as fnName takes it, or the Lambda Invoke API's
// /2015-03-31/functions/NAME/invocations, as the mux routes it to
// lambdaInvoke. It takes only paths made of unreserved characters and
// slashes, which parse unescaped, with no query, no "//" and no "/.":
// paths net/http's mux neither redirects nor unescapes.
func fastTarget(target []byte) (name []byte, lambda, ok bool) {
	if bytes.Contains(target, []byte("//")) || bytes.Contains(target, []byte("/.")) {
		return nil, false, false
	}
	for _, ch := range target {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_' || ch == '.' || ch == '~' || ch == '/') {
			return nil, false, false
		}
	}
	if p, found := bytes.CutPrefix(target, []byte("/fn/")); found {
		name, _, _ = bytes.Cut(p, []byte("/"))
		return name, false, len(name) > 0
	}
	p, found := bytes.CutPrefix(target, []byte("/2015-03-31/functions/"))
	if !found {
		return nil, false, false
	}
	name, found = bytes.CutSuffix(p, []byte("/invocations"))
	return name, true, found && len(name) > 0 && bytes.IndexByte(name, '/') < 0
}

func validToken(b []byte) bool {
	for _, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), ch) >= 0) {
			return false
		}
	}
	return true
}

func validValue(b []byte) bool {
	for _, ch := range b {
		if ch < ' ' && ch != '\t' || ch == 0x7f {
			return false
		}
	}
	return true
}

// validHost takes the plain host[:port] forms (names, IPv4, bracketed
// IPv6); net/http judges the rest.
func validHost(b []byte) bool {
	for _, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '.' || ch == ':' || ch == '[' || ch == ']') {
			return false
		}
	}
	return true
}

// parseLength parses a Content-Length of plain digits.
func parseLength(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 12 {
		return 0, false
	}
	n := 0
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		n = n*10 + int(ch-'0')
	}
	return n, true
}

// serveInvoke runs the invocation and queues its response, as invokeFn
// or lambdaInvoke and net/http would write it.
func (c *fastConn) serveInvoke(req fastRequest) {
	out, err := c.l.s.invokeCounted(c.l.ctx, system.Invocation{Function: req.name, Payload: req.payload})
	if err != nil {
		c.writeFailure(req.lambda, nil, err)
		return
	}
	if out.Err != nil {
		c.writeFailure(req.lambda, out, out.Err)
		return
	}
	// A success, the hot path, is written straight into the buffer, its
	// handler's headers in net/http's (sorted) order.
	b := append(c.out, "HTTP/1.1 200 OK\r\n"...)
	if req.lambda {
		b = append(b, "Content-Type: application/json\r\nX-Amz-Executed-Version: "...)
		b = strconv.AppendInt(b, int64(out.Version), 10)
		b = append(b, "\r\n"...)
	}
	b = appendOutcomeHeaders(b, out)
	c.out = c.appendBody(b, !req.lambda, out.Output)
}

// writeFailure queues the response invokeFn (through errs.WriteHTTP) or
// lambdaInvoke writes for a platform error (out is nil) or a function's
// failure: it runs their code on a recorder and writes what it recorded
// as net/http would.
func (c *fastConn) writeFailure(lambda bool, out *system.Outcome, err error) {
	if c.rec == nil {
		c.rec = httpwire.NewRecorder()
	}
	w := c.rec
	w.Reset()
	switch {
	case lambda && out != nil:
		writeLambdaOutcome(w, out)
	case lambda:
		writeLambdaError(w, err)
	default:
		if out != nil {
			setOutcomeHeaders(w.H, out)
		}
		errs.WriteHTTP(w, err)
	}
	b := w.AppendHead(c.out)
	_, typed := w.H["Content-Type"]
	c.out = c.appendBody(b, !typed, w.Body)
}

// appendBody appends the headers net/http adds, in its order, to a body
// written at once by a handler that set no length (Date; its length, or
// chunked past 2 KiB; when sniff is set and the body is not empty, a
// sniffed Content-Type; Connection: close while draining), the end of the
// header and the body.
func (c *fastConn) appendBody(b []byte, sniff bool, body []byte) []byte {
	b = append(b, "Date: "...)
	b = append(b, httpDate()...)
	b = append(b, "\r\n"...)
	chunked := len(body) > bufferBeforeChunking
	if !chunked {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(body)), 10)
		b = append(b, "\r\n"...)
	}
	if sniff && len(body) > 0 {
		b = append(b, "Content-Type: "...)
		b = append(b, http.DetectContentType(body)...)
		b = append(b, "\r\n"...)
	}
	if c.l.draining.Load() {
		b = append(b, "Connection: close\r\n"...)
	}
	if chunked {
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	b = append(b, "\r\n"...)
	if !chunked {
		return append(b, body...)
	}
	b = strconv.AppendInt(b, int64(len(body)), 16)
	b = append(b, "\r\n"...)
	b = append(b, body...)
	return append(b, "\r\n0\r\n\r\n"...)
}

// appendOutcomeHeaders appends the header lines setOutcomeHeaders sets,
// sorted by key as net/http writes them.
func appendOutcomeHeaders(b []byte, out *system.Outcome) []byte {
	b = append(b, HeaderBilled+": "...)
	b = strconv.AppendInt(b, out.BilledMs, 10)
	b = append(b, "\r\n"+HeaderCold+": "...)
	b = append(b, coldValue(out)...)
	b = append(b, "\r\n"...)
	b = append(b, HeaderCPU+": "...)
	b = strconv.AppendInt(b, out.Usage.CPU.Microseconds(), 10)
	b = append(b, "\r\n"+HeaderInvocationID+": "...)
	b = append(b, out.ID...)
	b = append(b, "\r\n"+HeaderVersion+": "...)
	b = strconv.AppendInt(b, int64(out.Version), 10)
	return append(b, "\r\n"...)
}

// dateCache holds the Date header's value, formatted once a second.
var dateCache atomic.Pointer[cachedDate]

type cachedDate struct {
	sec int64
	val string
}

func httpDate() string {
	now := time.Now()
	if d := dateCache.Load(); d != nil && d.sec == now.Unix() {
		return d.val
	}
	d := &cachedDate{sec: now.Unix(), val: now.UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.val
}

// handedConn is a connection handed to net/http: its reads return the
// bytes the fast path had buffered first.
type handedConn struct {
	net.Conn
	buf []byte
}

func (c *handedConn) Read(p []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite lets net/http half-close the connection after an error
// response, as it does on a plain TCP connection.
func (c *handedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
