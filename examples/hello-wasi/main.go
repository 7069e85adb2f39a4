// Command hello-wasi is a Mote function with no SDK: a plain WASI preview 1
// program that reads the event on stdin and writes its result to stdout.
//
// Build it with any wasip1 toolchain; with Go:
//
//	GOOS=wasip1 GOARCH=wasm go build -o hello.wasm .
//
// Mote runs one fresh instance per invocation and sets MOTE_FUNCTION,
// MOTE_VERSION, MOTE_INVOCATION_ID and MOTE_DEADLINE_MS in its environment.
// What it writes to stderr goes to the function's log; a non-zero exit
// status fails the invocation.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	event, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reading event:", err)
		os.Exit(1)
	}
	if len(event) == 0 {
		event = []byte("world")
	}
	fmt.Fprintf(os.Stderr, "greeting %s for invocation %s\n", event, os.Getenv("MOTE_INVOCATION_ID"))
	fmt.Printf("hello, %s", event)
}
