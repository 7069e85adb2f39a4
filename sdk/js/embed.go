// Package js embeds Mote's JavaScript SDK (the ES modules and
// package.json in this directory) so that the mote binary can offer it to
// process functions without each function bundling a copy; see
// internal/runtime/process/sdkpath.go. The SDK itself is plain
// JavaScript: this file only makes its sources reachable from Go.
package js

import "embed"

// FS holds the SDK's files (*.mjs, package.json) at its root.
//
//go:embed *.mjs package.json
var FS embed.FS
