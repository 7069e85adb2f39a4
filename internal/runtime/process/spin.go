package process

import (
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
)

// A hand-off between Mote and a function process costs two scheduler
// wakeups on top of the bytes: the kernel waking Go's netpoller thread,
// then that thread handing the goroutine to a P (often another thread).
// On a VM each is tens of microseconds, more than the rest of a warm
// invocation or a host call. When Mote has just written to a function on
// one of the framed channels (an event, a host call's answer) the next
// bytes usually follow within microseconds, so the read that follows
// polls the socket with non-blocking reads for a short window before
// parking. The HTTP Runtime API does not poll: its clients (aws-lambda-go,
// Python, Node) spend longer per request than a window, and polling for
// them measured slower, taking a CPU the function needed.
//
// The polling is bounded: only the first read after a write polls, for at
// most the connection's window; it stops while polls mostly miss
// (spinConn); at most maxSpinners goroutines poll at once across the
// process, so polling never takes more than half the CPUs away from the
// functions; and an idle function costs at most one window after its last
// message. The polling is Mote's CPU, outside the function's cgroup, so it
// is never billed.

// Polling windows, by what is expected next.
const (
	// spinHostCall: after answering a host call, for the function's next
	// one (a function making host calls makes them in a row).
	spinHostCall = 50 * time.Microsecond
	// spinResult: after handing over an event, for the function's result
	// (a short handler answers within this window).
	spinResult = 100 * time.Microsecond
)

var (
	spinners    atomic.Int32
	maxSpinners = int32(max(1, runtime.GOMAXPROCS(0)/2))
)

// spinConn is a connection whose first read after each write polls for up
// to its window (spinPolicy) before parking in the netpoller.
type spinConn struct {
	net.Conn
	raw   syscall.RawConn
	armed atomic.Bool // a write happened since the last read
	spin  spinPolicy  // used by the reading goroutine only

	// The read deadline of a message underway (expect), used by the
	// reading goroutine only.
	msgTimeout time.Duration // 0: no message is underway
	msgArmed   bool          // the deadline for this part is set
	deadline   bool          // a read deadline is set on Conn
}

// spinProbe: while polling does not pay, one read in spinProbe polls.
const spinProbe = 16

// newSpinConn wraps c; a connection without a raw file descriptor reads
// as usual.
func newSpinConn(c net.Conn, spin time.Duration) *spinConn {
	s := &spinConn{Conn: c}
	s.setWindow(spin)
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			s.raw = raw
		}
	}
	return s
}

// setWindow sets the longest poll; it is called before reads start.
func (s *spinConn) setWindow(d time.Duration) { s.spin.setWindow(d) }

func (s *spinConn) Write(p []byte) (int, error) {
	s.armed.Store(true)
	return s.Conn.Write(p)
}

// expect bounds the rest of the message being read (a request's headers,
// its body, a frame) to d from the next read that has to wait for bytes.
// The deadline is set lazily, by that read: a message that arrived whole
// with its first bytes, as on the warm path, costs no deadline at all.
func (s *spinConn) expect(d time.Duration) { s.msgTimeout, s.msgArmed = d, false }

// idle ends the message: the connection may wait for its next one for as
// long as it likes (it counts against the instance's connection cap).
func (s *spinConn) idle() {
	s.msgTimeout, s.msgArmed = 0, false
	if s.deadline {
		s.Conn.SetReadDeadline(time.Time{})
		s.deadline = false
	}
}

func (s *spinConn) Read(p []byte) (int, error) {
	if s.msgTimeout > 0 && !s.msgArmed {
		s.Conn.SetReadDeadline(time.Now().Add(s.msgTimeout))
		s.msgArmed, s.deadline = true, true
	}
	if s.raw == nil || len(p) == 0 || !s.armed.Swap(false) || !s.spin.due() {
		return s.Conn.Read(p)
	}
	n, hit, polled, err := spinRead(s.raw, p, s.spin.max)
	if polled {
		s.spin.record(hit)
	}
	return n, err
}

// spinPolicy decides how long a wait polls before sleeping, and polls.
//
// It polls only while polling pays: it keeps a moving average of how often
// a poll caught the answer and polls while at least half did. When it
// stops (a peer that does real work per message, or goes idle), it still
// polls one wait in spinProbe, so it notices when answers are quick again.
// (The time an answer took is no guide once asleep: it then includes the
// wakeup that polling would have saved.) At most maxSpinners goroutines
// poll at once across the process.
type spinPolicy struct {
	max   time.Duration // the window; 0 never polls
	hits  int           // moving average of polls that caught the answer, of 256
	reads int           // waits since the last poll
}

// setWindow sets the longest poll; it is called before waits start.
func (s *spinPolicy) setWindow(d time.Duration) { s.max, s.hits, s.reads = d, 256, 0 }

// due reports whether this wait should poll, counting it.
func (s *spinPolicy) due() bool {
	if s.max == 0 {
		return false
	}
	if s.reads++; s.hits < 128 && s.reads < spinProbe {
		return false
	}
	s.reads = 0
	return true
}

// record adds a poll's outcome to the average.
func (s *spinPolicy) record(hit bool) {
	h := 0
	if hit {
		h = 256
	}
	s.hits += (h - s.hits) / 8
}

// poll polls ready for up to the window, if this wait is due to poll and
// a polling slot is free, and reports whether ready became true.
func (s *spinPolicy) poll(ready func() bool) bool {
	if !s.due() {
		return ready()
	}
	hit, polled := spinUntil(s.max, ready)
	if !polled {
		return ready()
	}
	s.record(hit)
	return hit
}

// spinUntil polls ready for up to window when a polling slot is free:
// polled reports whether it did (ready is not called otherwise), hit
// whether ready became true. Unlike the Go SDK's polls it does not yield
// the CPU: yielding measured better in the SDK's poll for its next event
// (docs/process-functions.md, "Polling"), but in Mote's polls it did not
// (RATIONALE.md).
func spinUntil(window time.Duration, ready func() bool) (hit, polled bool) {
	if window <= 0 {
		return false, false
	}
	if spinners.Add(1) > maxSpinners {
		spinners.Add(-1)
		return false, false
	}
	defer spinners.Add(-1)
	start := time.Now()
	for i := 0; ; i++ {
		if ready() {
			return true, true
		}
		// The clock is read every few polls: it costs more than a poll.
		if i&15 == 15 && time.Since(start) >= window {
			return false, true
		}
	}
}

// spinRead reads into p from raw, polling for up to spin (when a polling
// slot is free) before waiting in the netpoller. polled reports whether it
// polled, hit whether the data came while it did.
func spinRead(raw syscall.RawConn, p []byte, spin time.Duration) (n int, hit, polled bool, err error) {
	first := true
	rerr := raw.Read(func(fd uintptr) bool {
		read := func() bool {
			for {
				n, err = syscall.Read(int(fd), p)
				if err != syscall.EINTR {
					return err != syscall.EAGAIN
				}
			}
		}
		if first {
			first = false
			if hit, polled = spinUntil(spin, read); polled {
				return hit
			}
		}
		return read()
	})
	switch {
	case rerr != nil:
		return 0, false, polled, rerr
	case err != nil:
		return 0, false, polled, err
	case n == 0:
		return 0, false, polled, io.EOF
	}
	return n, hit, polled, nil
}
