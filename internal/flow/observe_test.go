package flow

import (
	"testing"
	"time"
)

// A queue record keeps the traceparent it was queued under; one written
// before the field existed (it ends after the message) reads without it.
func TestQueuedTraceparent(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	at := time.Unix(1700000000, 0).UTC()
	for _, want := range []queued{
		{ID: "a", Function: "f", Payload: []byte("p"), At: at, Trace: tp},
		{ID: "b", Function: "f", Payload: []byte("p"), At: at, Attempts: 2, Code: "timeout", Message: "slow"},
	} {
		got, err := decodeQueued(encodeQueued(&want))
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != want.ID || got.Trace != want.Trace || got.Message != want.Message || !got.At.Equal(want.At) {
			t.Errorf("got %+v, want %+v", got, want)
		}
	}
}
