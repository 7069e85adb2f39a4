package runtime

import (
	"context"
	"io"
)

// Stream receives an invocation's output while the function produces it,
// for the caller that wants it before the invocation ends (an HTTP
// function's streamed response). A runtime that can stream a function's
// output (the process runtime, for the Lambda Runtime API's response
// streaming) writes it to the Stream marked on Invoke's context instead of
// returning it in Result.Output, and flushes after each part; one that
// cannot ignores the mark and returns the output whole. Writes happen
// before Invoke returns, from any goroutine, one at a time. A Write error
// means the receiver wants no more: the runtime discards the rest.
type Stream interface {
	io.Writer
	Flush() error
}

type streamKey struct{}

// WithStream returns ctx marked with s.
func WithStream(ctx context.Context, s Stream) context.Context {
	return context.WithValue(ctx, streamKey{}, s)
}

// StreamOf returns the Stream WithStream put on ctx, or nil.
func StreamOf(ctx context.Context) Stream {
	s, _ := ctx.Value(streamKey{}).(Stream)
	return s
}
