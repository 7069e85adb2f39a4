// Package python embeds Mote's Python SDK (the mote package in this
// directory) so that the mote binary can offer it to process functions
// without each function bundling a copy; see
// internal/runtime/process/sdkpath.go. The SDK itself is plain Python:
// this file only makes its sources reachable from Go.
package python

import "embed"

// FS holds mote/*.py, the SDK's package, at the path "mote".
//
//go:embed mote/*.py
var FS embed.FS
