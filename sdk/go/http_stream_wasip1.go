//go:build wasip1

package mote

import "io"

// startStream returns nil: a wasm reactor's output goes back when its
// handler returns (HandleHTTP's Flush does nothing there yet).
func startStream(*Context, []byte) io.WriteCloser { return nil }
