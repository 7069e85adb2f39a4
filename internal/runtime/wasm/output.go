package wasm

import (
	"bytes"
	"context"
	"errors"
	"strings"
)

// maxLine bounds one log line; a longer run without a newline is cut.
const maxLine = 16 << 10

// logWriter turns a guest's stdout or stderr into log lines, and keeps what
// an error message needs: the first Go runtime "panic:"/"fatal error:" line
// and the tail of the stream, for the current invocation.
type logWriter struct {
	g       *guest
	stream  string
	partial []byte
	tail    []byte // last tailSize bytes written
	first   string // first panic/fatal line
}

const tailSize = 512

func (w *logWriter) reset() {
	w.partial, w.tail, w.first = w.partial[:0], w.tail[:0], ""
}

// Write implements io.Writer.
func (w *logWriter) Write(p []byte) (int, error) {
	w.tail = append(w.tail, p...)
	if len(w.tail) > 2*tailSize {
		w.tail = append(w.tail[:0], w.tail[len(w.tail)-tailSize:]...)
	}
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.emit(w.partial[:i])
		w.partial = w.partial[:copy(w.partial, w.partial[i+1:])]
	}
	if len(w.partial) > maxLine {
		w.flush()
	}
	return len(p), nil
}

func (w *logWriter) emit(line []byte) {
	if w.first == "" && (bytes.HasPrefix(line, []byte("panic: ")) || bytes.HasPrefix(line, []byte("fatal error: "))) {
		w.first = string(line)
	}
	ctx := w.g.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	w.g.logLine(ctx, w.stream, line)
}

// flush emits a trailing line without a newline.
func (w *logWriter) flush() {
	if len(w.partial) > 0 {
		w.emit(w.partial)
		w.partial = w.partial[:0]
	}
}

// summary is what an error message quotes from this stream: the Go
// runtime's panic line if there was one, else the last lines written.
func (w *logWriter) summary() string {
	if w.first != "" {
		return w.first
	}
	t := w.tail
	if len(t) > tailSize {
		t = t[len(t)-tailSize:]
	}
	return strings.TrimSpace(strings.ToValidUTF8(string(t), "?"))
}

// errOutputTooLarge is returned to a guest writing past MaxOutput.
var errOutputTooLarge = errors.New("output too large")

// boundedBuffer collects a command's stdout up to max bytes.
type boundedBuffer struct {
	buf      []byte
	max      int
	overflow bool
}

// Write implements io.Writer.
func (b *boundedBuffer) Write(p []byte) (int, error) {
	if len(b.buf)+len(p) > b.max {
		b.overflow = true
		return 0, errOutputTooLarge
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}
