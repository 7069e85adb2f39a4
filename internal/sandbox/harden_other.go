//go:build !amd64 && !arm64

package sandbox

import (
	"fmt"
	"runtime"
)

// policy refuses: the filter's lists are written for x86-64 and arm64
// only, and a sandbox without its filter must not start.
func policy() (filterPolicy, error) {
	return filterPolicy{}, fmt.Errorf("no seccomp filter for %s", runtime.GOARCH)
}
