package sandbox

import "golang.org/x/sys/unix"

const (
	auditArch = unix.AUDIT_ARCH_AARCH64
	x32ABI    = false
)

// allowArch and refuseArch are empty: arm64 has only the generic calls.
var (
	allowArch  []uintptr
	refuseArch []uintptr
)
