package process

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mote-run/mote/internal/httpwire"
	"github.com/mote-run/mote/internal/runtime"
)

// The Runtime API is four endpoints with bodies and a handful of headers,
// spoken by one client per instance. It is served by this small HTTP/1.1
// server rather than net/http: net/http's per-request machinery (a
// background read of each connection while a handler runs, and the
// deadline that stops it afterwards) costs a goroutine wakeup per request
// and measured ~100 µs of a warm invocation here, more than the rest of
// the path. What it accepts: request lines in origin or absolute form,
// Content-Length or chunked bodies, Expect: 100-continue, keep-alive
// (HTTP/1.1's default, HTTP/1.0 on request) and Connection: close.

// maxHeaderBytes bounds a request's line and headers together.
const maxHeaderBytes = 64 << 10

// rtRequest is one parsed Runtime API request.
type rtRequest struct {
	method, path string
	requestID    string // Lambda-Runtime-Aws-Request-Id
	body         []byte
	tooLarge     bool // the body was over the limit and is not in body
	bodyErr      error
	streaming    bool // Lambda-Runtime-Function-Response-Mode: streaming, or its content type
	streamed     bool // the body went to the invocation's runtime.Stream
}

var errBadRequest = errors.New("process: malformed http request")

// serveHTTPConn serves Runtime API requests on one connection until it
// closes, a request is malformed, too slow or asks to close, or the
// instance closes.
//
// What a connection can make Mote hold is bounded: between requests it
// may idle for as long as it likes (the instance's connection cap bounds
// how many do), a request must arrive within the header and body
// timeouts once begun, and a body takes memory only as its bytes arrive,
// a large one released after its request.
func (in *instance) serveHTTPConn(c *spinConn, br *bufio.Reader) {
	bw := bufio.NewWriterSize(c, 16<<10)
	w := httpwire.NewRecorder()
	cfg := &in.m.rt.cfg
	var r rtRequest
	for {
		c.idle()
		if cap(r.body) > keepBuffer {
			r.body = nil
		}
		if br.Buffered() == 0 {
			if _, err := br.Peek(1); err != nil {
				return
			}
		}
		c.expect(cfg.APIHeaderTimeout)
		r = rtRequest{body: r.body[:0]}
		keepAlive, err := in.readRequest(br, bw, &r, c)
		c.idle()
		if err != nil {
			if err == errBadRequest {
				writeRaw(bw, http.StatusBadRequest, "application/json", []byte(`{"errorMessage":"malformed request","errorType":"InvalidRequest"}`), false)
				bw.Flush()
			}
			return
		}
		w.Reset()
		if !in.route(w, &r, c) {
			return
		}
		keepAlive = keepAlive && !r.tooLarge && r.bodyErr == nil
		writeResponse(bw, w, keepAlive)
		if bw.Flush() != nil || !keepAlive {
			return
		}
	}
}

// keepBuffer is the largest body buffer a connection keeps between
// requests; a larger one is dropped, so an idle connection holds little.
const keepBuffer = 64 << 10

// readRequest parses one request, body included. keepAlive reports
// whether the connection stays open after the response. c, when not nil,
// is the connection br reads, whose read deadline moves from the headers'
// to the body's.
func (in *instance) readRequest(br *bufio.Reader, bw *bufio.Writer, r *rtRequest, c *spinConn) (keepAlive bool, err error) {
	line, err := readLine(br)
	if err != nil {
		return false, err
	}
	for len(line) == 0 { // tolerate a stray CRLF between requests
		if line, err = readLine(br); err != nil {
			return false, err
		}
	}
	method, rest, ok1 := bytes.Cut(line, []byte{' '})
	target, proto, ok2 := bytes.Cut(rest, []byte{' '})
	if !ok1 || !ok2 || len(method) == 0 || !bytes.HasPrefix(proto, []byte("HTTP/1.")) {
		return false, errBadRequest
	}
	if bytes.HasPrefix(target, []byte("http://")) || bytes.HasPrefix(target, []byte("https://")) {
		_, after, _ := bytes.Cut(target, []byte("//"))
		i := bytes.IndexByte(after, '/')
		if i < 0 {
			return false, errBadRequest
		}
		target = after[i:]
	}
	if i := bytes.IndexByte(target, '?'); i >= 0 {
		target = target[:i]
	}
	r.method, r.path = internMethod(method), string(target)
	keepAlive = string(proto) != "HTTP/1.0"
	length, chunked, expect := int64(-1), false, false
	total := len(line)
	for {
		h, err := readLine(br)
		if err != nil {
			return false, err
		}
		if len(h) == 0 {
			break
		}
		if total += len(h); total > maxHeaderBytes {
			return false, errBadRequest
		}
		k, v, ok := bytes.Cut(h, []byte{':'})
		if !ok {
			return false, errBadRequest
		}
		v = bytes.TrimSpace(v)
		switch {
		case httpwire.EqualFold(k, "Content-Length"):
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil || n < 0 {
				return false, errBadRequest
			}
			length = n
		case httpwire.EqualFold(k, "Transfer-Encoding"):
			chunked = httpwire.EqualFold(v, "chunked")
			if !chunked && !httpwire.EqualFold(v, "identity") {
				return false, errBadRequest
			}
		case httpwire.EqualFold(k, "Connection"):
			if httpwire.EqualFold(v, "close") {
				keepAlive = false
			} else if httpwire.EqualFold(v, "keep-alive") {
				keepAlive = true
			}
		case httpwire.EqualFold(k, "Expect"):
			expect = httpwire.EqualFold(v, "100-continue")
		case httpwire.EqualFold(k, hdrRequestID):
			r.requestID = string(v)
		case httpwire.EqualFold(k, hdrResponseMode):
			r.streaming = r.streaming || httpwire.EqualFold(v, "streaming")
		case httpwire.EqualFold(k, "Content-Type"):
			// aws-lambda-go's streamed response says only this.
			r.streaming = r.streaming || httpwire.EqualFold(v, streamingContentType)
		}
	}
	max := in.m.rt.cfg.MaxResponse
	if strings.HasPrefix(r.path, pathCall) {
		max = in.m.rt.cfg.hostCallLimit()
	}
	if expect && (chunked || length > 0 && length <= max) {
		bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if err := bw.Flush(); err != nil {
			return false, err
		}
	}
	if c != nil && (chunked || length > 0) {
		c.expect(in.m.rt.cfg.APIBodyTimeout)
	}
	var sink runtime.Stream
	if chunked && r.streaming {
		var deadline time.Time
		if sink, deadline = in.streamFor(r.method, r.path); sink != nil && c != nil {
			// A stream lasts as long as its invocation may, not as
			// long as a body may take to arrive.
			c.expect(time.Until(deadline))
		}
	}
	switch {
	case sink != nil:
		r.streamed = true
		err = streamChunked(br, sink)
	case chunked:
		r.body, err = readChunked(br, r.body, max)
	case length > max:
		// Read what was sent (when not absurd) so the answer reaches
		// the sender; the connection closes after it all the same.
		r.tooLarge = true
		if length <= maxDrain && !expect {
			if _, err := io.CopyN(io.Discard, br, length); err != nil {
				r.bodyErr = err
			}
		}
		return keepAlive, nil
	case length > 0:
		r.body, err = appendFull(br, r.body[:0], int(length))
	}
	switch {
	case err == errTooLarge:
		r.tooLarge, r.body = true, r.body[:0]
	case err == errBadRequest:
		return false, err
	case err != nil:
		r.bodyErr, r.body = err, r.body[:0]
	}
	return keepAlive, nil
}

// readLine reads one CRLF- (or LF-) terminated line, without it.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, errBadRequest
	}
	if err != nil {
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// readChunked appends a chunked body to buf, failing with errTooLarge
// past max bytes.
func readChunked(br *bufio.Reader, buf []byte, max int64) ([]byte, error) {
	for {
		line, err := readLine(br)
		if err != nil {
			return buf, err
		}
		size, _, _ := bytes.Cut(line, []byte{';'})
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil || n < 0 {
			return buf, errBadRequest
		}
		if n == 0 {
			for { // trailers, then the blank line
				l, err := readLine(br)
				if err != nil {
					return buf, err
				}
				if len(l) == 0 {
					return buf, nil
				}
			}
		}
		if n > max-int64(len(buf)) { // not len+n: that can overflow
			return buf, errTooLarge
		}
		if buf, err = appendFull(br, buf, int(n)); err != nil {
			return buf, err
		}
		if l, err := readLine(br); err != nil || len(l) != 0 {
			return buf, errBadRequest
		}
	}
}

// hdrResponseMode is the header of a streamed response (Lambda's
// response streaming: aws-lambda-go's LambdaFunctionURLStreamingResponse,
// awslambda.streamifyResponse in Node).
const hdrResponseMode = "Lambda-Runtime-Function-Response-Mode"

// streamingContentType is the type of a streamed HTTP response: a JSON
// prelude, eight NUL bytes, the body (internal/httpfn reads it).
const streamingContentType = "application/vnd.awslambda.http-integration-response"

// streamFor returns the runtime.Stream of the invocation a request posts
// its response for, if it is the one running and its caller wants a
// stream; else nil, and the body is read whole as any other.
func (in *instance) streamFor(method, path string) (runtime.Stream, time.Time) {
	rest, ok := strings.CutPrefix(path, pathInvPrefix)
	id, action, _ := strings.Cut(rest, "/")
	if !ok || method != http.MethodPost || action != "response" {
		return nil, time.Time{}
	}
	c := in.cur.Load()
	if c == nil || c.id != id {
		return nil, time.Time{}
	}
	return runtime.StreamOf(c.ctx), c.deadline
}

// streamChunked passes a chunked body to sink chunk by chunk, flushing
// after each, as it arrives. Once sink refuses a write the rest of the
// body is read and dropped: the function keeps its connection in step.
func streamChunked(br *bufio.Reader, sink runtime.Stream) error {
	buf := make([]byte, 0, 16<<10)
	var werr error
	for {
		line, err := readLine(br)
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(line, []byte{';'})
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil || n < 0 {
			return errBadRequest
		}
		if n == 0 {
			for { // trailers, then the blank line
				l, err := readLine(br)
				if err != nil {
					return err
				}
				if len(l) == 0 {
					return nil
				}
			}
		}
		for n > 0 {
			k := min(n, int64(cap(buf)))
			b, err := appendFull(br, buf[:0], int(k))
			if err != nil {
				return err
			}
			if werr == nil {
				if _, werr = sink.Write(b); werr == nil {
					werr = sink.Flush()
				}
			}
			n -= k
		}
		if l, err := readLine(br); err != nil || len(l) != 0 {
			return errBadRequest
		}
	}
}

// growStep is the least a body buffer grows by while its bytes arrive.
const growStep = 16 << 10

// appendFull appends exactly n bytes read from r to buf. The buffer grows
// only as the bytes arrive, never by more than it holds already (or
// growStep), so a peer that declares a large body and sends little makes
// Mote allocate little.
func appendFull(r io.Reader, buf []byte, n int) ([]byte, error) {
	want := len(buf) + n
	for len(buf) < want {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(want-len(buf), max(len(buf), growStep)))
		}
		k, err := io.ReadFull(r, buf[len(buf):min(cap(buf), want)])
		buf = buf[:len(buf)+k]
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return buf, err
		}
	}
	return buf, nil
}

// route dispatches one request. It returns false when the connection is
// gone and nothing should be written.
func (in *instance) route(w *httpwire.Recorder, r *rtRequest, c *spinConn) bool {
	p := r.path
	switch {
	case p == pathNext:
		if r.method != http.MethodGet {
			apiError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "use GET")
			return true
		}
		return in.serveNext(w, c)
	case len(p) > len(pathInvPrefix) && p[:len(pathInvPrefix)] == pathInvPrefix:
		id, action, ok := cutByte(p[len(pathInvPrefix):], '/')
		if !ok || r.method != http.MethodPost || (action != "response" && action != "error") {
			apiError(w, http.StatusNotFound, "NotFound", "unknown runtime api path")
			return true
		}
		in.serveResult(w, r, id, action == "error")
	case p == pathInitError:
		in.serveInitError(w, r)
	case len(p) > len(pathCall) && p[:len(pathCall)] == pathCall:
		in.serveCall(w, r, p[len(pathCall):])
	default:
		apiError(w, http.StatusNotFound, "NotFound", "unknown runtime api path")
	}
	return true
}

func cutByte(s string, b byte) (before, after string, ok bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// writeResponse writes w's status, headers and body with its length.
func writeResponse(bw *bufio.Writer, w *httpwire.Recorder, keepAlive bool) {
	delete(w.H, "Content-Length") // finishHeader writes the body's
	bw.Write(w.AppendHead(bw.AvailableBuffer()))
	finishHeader(bw, len(w.Body), keepAlive)
	bw.Write(w.Body)
}

// writeRaw writes a response with one content type.
func writeRaw(bw *bufio.Writer, status int, ctype string, body []byte, keepAlive bool) {
	bw.Write(httpwire.AppendStatusLine(bw.AvailableBuffer(), status))
	bw.WriteString("Content-Type: ")
	bw.WriteString(ctype)
	bw.WriteString("\r\n")
	finishHeader(bw, len(body), keepAlive)
	bw.Write(body)
}

func finishHeader(bw *bufio.Writer, n int, keepAlive bool) {
	var num [20]byte
	if !keepAlive {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("Content-Length: ")
	bw.Write(strconv.AppendInt(num[:0], int64(n), 10))
	bw.WriteString("\r\n\r\n")
}

// internMethod avoids an allocation for the methods the API uses.
func internMethod(m []byte) string {
	switch string(m) {
	case http.MethodGet:
		return http.MethodGet
	case http.MethodPost:
		return http.MethodPost
	}
	return string(m)
}

// connGone reports whether the peer has closed or reset c, without
// reading what it may have sent.
func connGone(c *spinConn) bool {
	if c.raw == nil {
		return false
	}
	gone := false
	_ = c.raw.Control(func(fd uintptr) {
		var b [1]byte
		for {
			n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
			case err != nil || n == 0:
				gone = true
			}
			return
		}
	})
	return gone
}
