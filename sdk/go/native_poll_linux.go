//go:build linux

package mote

import (
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// pollConn is a connection whose first read after each write may poll the
// socket with non-blocking reads for a short window before parking in Go's
// netpoller. Parking costs two scheduler wakeups when the bytes arrive
// (the netpoller's thread, then the goroutine's), which on a VM is tens of
// microseconds: more than a host call or a short invocation. Polling is
// used only on Mote's channels (docs/process-functions.md, "Polling").
type pollConn struct {
	net.Conn
	raw   syscall.RawConn
	armed atomic.Bool
	w     pollWindow
}

// pollWindow is how long a read polls. It polls only while polling pays: it keeps a moving average of how often a poll caught
// the answer and polls while at least half did; when it stops (a function
// invoked rarely, host calls that take long), one read in pollProbe still
// polls, so it notices when answers are quick again. (The time an answer
// took is no guide once parked: it then includes the wakeup that polling
// would have saved.)
type pollWindow struct {
	max   time.Duration
	hits  int // moving average of polls that caught the answer, of 256
	reads int // reads since the last poll
}

func newPollWindow(max time.Duration) pollWindow { return pollWindow{max: max, hits: 256} }

const pollProbe = 16

func newPollConn(c net.Conn, window time.Duration) *pollConn {
	p := &pollConn{Conn: c, w: newPollWindow(window)}
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			p.raw = raw
		}
	}
	return p
}

func (p *pollConn) Write(b []byte) (int, error) {
	p.armed.Store(true)
	return p.Conn.Write(b)
}

func (p *pollConn) Read(b []byte) (int, error) {
	if p.raw == nil || len(b) == 0 || !p.armed.Swap(false) || !p.w.due() {
		return p.Conn.Read(b)
	}
	n, hit, err := pollRead(p.raw, b, p.w.max)
	p.w.record(hit)
	return n, err
}

// due reports whether this read should poll, counting it.
func (w *pollWindow) due() bool {
	if w.reads++; w.hits < 128 && w.reads < pollProbe {
		return false
	}
	w.reads = 0
	return true
}

// record adds a poll's outcome to the average.
func (w *pollWindow) record(hit bool) {
	h := 0
	if hit {
		h = 256
	}
	w.hits += (h - w.hits) / 8
}

// The kernel adds a running task's CPU time to its cgroup's counter only
// when it is scheduled (a tick, a sleep) or asked for the task's own CPU
// clock, so a function that polls instead of sleeping would have its
// polling counted in whichever invocation's readings a tick happened to
// fall, and its handler's time possibly in none. Polling therefore reads
// the thread's CPU clock every accountEvery, which brings the counter up
// to date (at most that much polling is then counted in the next
// invocation), and the invocation loop reads it before writing a result
// (accountCPU), so Mote's reading after the result includes the handler.
const accountEvery = 10 * time.Microsecond

// accountCPU reads this thread's CPU clock: the kernel then adds the time
// it has run since it was last scheduled to the cgroup's counter (unlike a
// yield, it keeps the CPU). Go's clock_gettime goes through the vDSO only
// for wall clocks, so this is the system call.
func accountCPU() {
	var ts syscall.Timespec
	syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0)
}

const clockThreadCPUTime = 3 // CLOCK_THREAD_CPUTIME_ID

// yieldEvery is how often a poll offers its CPU to other runnable threads
// (sched_yield). The scheduler lets a thread that has just started
// running keep its CPU for a while even when another wakes up there, so
// without yielding a poll can hold off the very thread whose message
// would end it (Mote's, or the client's whose request becomes the next
// event): the poll then runs out, the function falls back to sleeping,
// and its polling policy, seeing misses, stops polling. Measured on the
// poll for the next event, through the gateway at one connection on 2
// vCPUs, p50 of 3 s runs interleaved in one script: 18–83 µs (median 50) without yielding,
// 18–35 µs (median 20) yielding every 20 µs; yielding every 5 or 10 µs
// was no better, and on every poll iteration 29–37 µs.
const yieldEvery = 20 * time.Microsecond

// spinUntil calls ready until it reports true, for at most window, and
// reports whether it did. It is how every poll of the SDK waits: it reads
// the thread's CPU clock every accountEvery (the polling is the
// function's CPU; see accountCPU) and yields the CPU every yieldEvery.
func spinUntil(window time.Duration, ready func() bool) bool {
	start := time.Now()
	next, yield := accountEvery, yieldEvery
	for {
		if ready() {
			return true
		}
		d := time.Since(start)
		if d >= window {
			return false
		}
		if d >= next {
			accountCPU()
			next = d + accountEvery
		}
		if d >= yield {
			syscall.RawSyscall(syscall.SYS_SCHED_YIELD, 0, 0, 0)
			yield = d + yieldEvery
		}
	}
}

// pollRead reads into b, polling for up to spin before waiting in the
// netpoller; hit reports whether the data came while polling.
func pollRead(raw syscall.RawConn, b []byte, spin time.Duration) (n int, hit bool, err error) {
	polling := true
	rerr := raw.Read(func(fd uintptr) bool {
		read := func() bool {
			for {
				n, err = syscall.Read(int(fd), b)
				if err != syscall.EINTR {
					return err != syscall.EAGAIN
				}
			}
		}
		if polling {
			polling = false
			hit = spinUntil(spin, read)
			return hit
		}
		return read()
	})
	switch {
	case rerr != nil:
		return 0, false, rerr
	case err != nil:
		return 0, false, err
	case n == 0:
		return 0, false, io.EOF
	}
	return n, hit, nil
}
