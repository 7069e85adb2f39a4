// Package meter measures what invocations consume, for billing: CPU time
// read from the thread CPU clock (wasm functions run on a locked OS thread)
// and rounded up to whole milliseconds.
package meter

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ThreadCPU returns the CPU time consumed so far by the calling OS thread
// (CLOCK_THREAD_CPUTIME_ID, nanosecond resolution, about 1 µs a read).
//
// The figure is only meaningful between two reads on the same thread: the
// caller must hold runtime.LockOSThread from the first read to the second.
// Time the thread spends asleep (in a blocking syscall, a channel wait, a
// timer) is not counted, which is what makes waits on host calls free.
//
// The read is a raw system call: clock_gettime never blocks, so telling
// the Go scheduler about it (what unix.ClockGettime does) is pure cost,
// paid twice per invocation.
func ThreadCPU() time.Duration {
	var ts unix.Timespec
	_, _, errno := unix.RawSyscall(unix.SYS_CLOCK_GETTIME, unix.CLOCK_THREAD_CPUTIME_ID, uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		// The clock exists on every Linux Mote supports; a failure here
		// means a broken kernel, and 0 makes the invocation bill its
		// minimum rather than crash the platform.
		return 0
	}
	return time.Duration(ts.Nano())
}

// MinBilledMs is the least any invocation is billed, as on AWS Lambda: an
// invocation that ran at all used the platform, however little CPU its own
// code took.
const MinBilledMs = 1

// BilledMs returns the milliseconds billed for an invocation whose code used
// cpu: cpu rounded up to a whole millisecond, and never less than
// MinBilledMs (so 0 and 1 ns both bill 1 ms, 1.0001 ms bills 2 ms).
func BilledMs(cpu time.Duration) int64 {
	if cpu <= 0 {
		return MinBilledMs
	}
	ms := int64((cpu + time.Millisecond - 1) / time.Millisecond)
	return max(ms, MinBilledMs)
}
