// Command hello-reactor is a Mote function written with the Go SDK. The same
// source builds as a wasm reactor, which Mote keeps warm and calls in
// microseconds:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o hello.wasm .
//
// and as a native process function that speaks the AWS Lambda Runtime API:
//
//	go build -o bootstrap .
package main

import mote "github.com/mote-run/mote/sdk/go"

func init() { mote.Handle(hello) }

// main runs only in the native build; a wasm reactor never calls it.
func main() { mote.Start() }

func hello(ctx *mote.Context, event []byte) ([]byte, error) {
	if len(event) == 0 {
		event = []byte("world")
	}
	return append([]byte("hello, "), event...), nil
}
