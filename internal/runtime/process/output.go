package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/mote-run/mote/internal/host"
)

// maxLine bounds one log line; longer output is split.
const maxLine = 64 << 10

// tailSize is how much recent output is kept for init error messages.
const tailSize = 2 << 10

// output reads a function's stdout and stderr and turns them into log
// lines: to the running invocation's Host (host.OpLog) while there is
// one, else, limited by a token bucket (Config.OutputRate, OutputBurst),
// to the function's own log (Spec.Output) or, without one, the runtime's
// logger. Output between invocations is work nobody is billed for; the
// bucket keeps what it can put in a log to a trickle, and what it drops
// is counted in a single notice instead.
//
// Reads happen under mu, through the pipes' raw non-blocking descriptors,
// so drain can take every byte the function wrote before it answered and
// know none is half-processed elsewhere.
type output struct {
	in               *instance
	stdoutR, stderrR *os.File
	stdoutW, stderrW *os.File
	wg               sync.WaitGroup

	mu      sync.Mutex
	c       *call // invocation to attribute lines to, or nil
	partial [2][]byte
	ring    []byte
	buf     []byte             // drain's read buffer
	raw     [2]syscall.RawConn // the read ends, for drain
	outside tokenBucket        // for lines outside an invocation
	dropped int64              // bytes dropped since the last notice
}

func newOutput(in *instance) (*output, error) {
	cfg := &in.m.rt.cfg
	o := &output{in: in, outside: newTokenBucket(cfg.OutputRate, cfg.OutputBurst, cfg.Now)}
	var err error
	if o.stdoutR, o.stdoutW, err = os.Pipe(); err != nil {
		return nil, err
	}
	if o.stderrR, o.stderrW, err = os.Pipe(); err != nil {
		o.stdoutR.Close()
		o.stdoutW.Close()
		return nil, err
	}
	return o, nil
}

// closeWriters drops Mote's copies of the write ends once the sandbox
// holds them, so the readers see EOF when the function is gone.
func (o *output) closeWriters() {
	o.stdoutW.Close()
	o.stderrW.Close()
}

func (o *output) start() {
	o.wg.Add(2)
	go o.pump(0, o.stdoutR)
	go o.pump(1, o.stderrR)
}

// pump reads one stream until EOF.
func (o *output) pump(stream int, f *os.File) {
	defer o.wg.Done()
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, 32<<10)
	eof := false
	for !eof {
		err := rc.Read(func(fd uintptr) bool {
			o.mu.Lock()
			defer o.mu.Unlock()
			n, err := syscall.Read(int(fd), buf)
			if errors.Is(err, syscall.EAGAIN) {
				return false // wait until readable
			}
			if n <= 0 {
				eof = true
				o.flushPartial(stream)
				o.noticeDropped()
				return true
			}
			o.take(stream, buf[:n])
			return true
		})
		if err != nil {
			return
		}
	}
}

// drain takes whatever the function has written and not yet been read,
// for invocation c (or for the logger when c is nil), flushing unfinished
// lines.
func (o *output) drain(c *call) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if c != nil {
		o.c = c
	}
	if o.buf == nil {
		o.buf = make([]byte, 32<<10)
	}
	for stream, f := range []*os.File{o.stdoutR, o.stderrR} {
		rc := o.raw[stream]
		if rc == nil {
			var err error
			if rc, err = f.SyscallConn(); err != nil {
				continue
			}
			o.raw[stream] = rc
		}
		_ = rc.Control(func(fd uintptr) {
			for {
				n, err := syscall.Read(int(fd), o.buf)
				if n <= 0 || err != nil {
					return
				}
				o.take(stream, o.buf[:n])
			}
		})
		o.flushPartial(stream)
	}
}

// setCall sets the invocation that lines belong to.
func (o *output) setCall(c *call) {
	o.mu.Lock()
	if o.dropped > 0 {
		o.noticeDropped()
	}
	o.c = c
	o.mu.Unlock()
}

// take splits b into lines and emits each. Called with mu held.
func (o *output) take(stream int, b []byte) {
	o.ring = append(o.ring, b...)
	if len(o.ring) > 2*tailSize {
		o.ring = append(o.ring[:0], o.ring[len(o.ring)-tailSize:]...)
	}
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			o.partial[stream] = append(o.partial[stream], b...)
			if len(o.partial[stream]) >= maxLine {
				o.flushPartial(stream)
			}
			return
		}
		line := b[:i]
		if p := o.partial[stream]; len(p) > 0 {
			line = append(p, line...)
			o.partial[stream] = p[:0]
		}
		o.emit(stream, line)
		b = b[i+1:]
	}
}

func (o *output) flushPartial(stream int) {
	if p := o.partial[stream]; len(p) > 0 {
		o.emit(stream, p)
		o.partial[stream] = p[:0]
	}
}

// emit sends one line on. Called with mu held: Host.Call for log lines is
// serialised, which keeps the lines in order.
func (o *output) emit(stream int, line []byte) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if c := o.c; c != nil {
		// The Host may keep the line: hand it a copy.
		cp := append([]byte(nil), line...)
		ctx := c.ctx
		if ctx.Err() != nil {
			ctx = context.WithoutCancel(ctx)
		}
		if _, err := c.ev.Host.Call(ctx, host.OpLog, [][]byte{cp}); err == nil {
			return
		}
	}
	name := "stdout"
	if stream == 1 {
		name = "stderr"
	}
	// A line costs its bytes and its newline, so empty lines cost too.
	if !o.outside.take(int64(len(line)) + 1) {
		o.dropped += int64(len(line)) + 1
		return
	}
	o.noticeDropped()
	o.outsideLine(name, string(line))
}

// outsideLine hands on a line written outside an invocation. Called with
// mu held.
func (o *output) outsideLine(stream, line string) {
	if f := o.in.m.spec.Output; f != nil {
		f(stream, line)
		return
	}
	o.in.log.Info("function output outside an invocation", "stream", stream, "line", line)
}

// noticeDropped reports the output dropped since the last notice, if
// any. Called with mu held.
func (o *output) noticeDropped() {
	if o.dropped == 0 {
		return
	}
	o.outsideLine("platform", fmt.Sprintf("mote: %d bytes of output written outside an invocation were dropped (limit %d bytes/s, bursts of %d)",
		o.dropped, o.outside.rate, o.outside.burst))
	o.dropped = 0
}

// tokenBucket is a rate limit in bytes: it holds up to burst tokens and
// gains rate a second.
type tokenBucket struct {
	rate, burst int64
	tokens      int64
	last        time.Time
	now         func() time.Time
}

func newTokenBucket(rate, burst int64, now func() time.Time) tokenBucket {
	if now == nil {
		now = time.Now
	}
	return tokenBucket{rate: rate, burst: burst, tokens: burst, last: now(), now: now}
}

// take spends n tokens if it has them.
func (b *tokenBucket) take(n int64) bool {
	t := b.now()
	if gained := int64(float64(b.rate) * t.Sub(b.last).Seconds()); gained > 0 {
		b.tokens = min(b.burst, b.tokens+gained)
		b.last = t
	}
	if n > b.tokens {
		return false
	}
	b.tokens -= n
	return true
}

// tail returns the last output the function wrote, trimmed, for error
// messages.
func (o *output) tail() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	t := o.ring
	if len(t) > tailSize {
		t = t[len(t)-tailSize:]
	}
	return string(bytes.TrimSpace(t))
}

// close waits for the readers (the function is gone, so they reach EOF;
// a writer that escaped the sandbox only delays this a moment) and closes
// the read ends.
func (o *output) close() {
	done := make(chan struct{})
	go func() { o.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
	}
	o.stdoutR.Close()
	o.stderrR.Close()
	<-done
}
