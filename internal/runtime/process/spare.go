package process

import (
	"context"
	"sync"
)

// A spare is an instance started before anyone asked for it: a fresh
// sandboxed process (its own init, cgroup, uid and namespaces, exactly as
// NewInstance makes one) that has run its interpreter's start-up, the
// SDK's and the function's imports, and waits for its first event, frozen
// by the cgroup freezer like any idle instance. NewInstance hands it out
// and starts the next one in the background, so the start of an instance
// (interpreter, imports, sandbox) is off the path of the invocation that
// needed it.
//
// It stands in for a forking zygote (SOCK). A zygote would have to fork
// its children before they drop privileges and enter their namespaces,
// which means an interpreter keeping CAP_SYS_ADMIN and CAP_SETUID while it
// runs Python or Node code, and the sandbox's set-up (root, mounts,
// seccomp, user switch) written again in each language; a zygote inside
// the function's sandbox can do none of it, so its children would share
// the zygote's uid, /tmp and network namespace. A spare keeps every
// guarantee of a fresh process because it is one: nothing is shared
// between instances, each interpreter seeds its own random generators at
// its own start, limits apply from its start, and CPU is metered from its
// first invocation (Invoke reads the cgroup's counter around each one).
// What it costs: one started, frozen process per loaded function, even
// when its pool has scaled to zero (its memory is charged to its own
// cgroup), and a start in the background after each one taken. A burst of
// n new instances finds one spare; the n-1 others start as before.
type spare struct {
	on bool // set at Load

	mu       sync.Mutex
	in       *instance // ready, or nil
	starting bool      // a refill is in flight
	closed   bool
	settled  chan struct{} // closed when the last refill started has ended
}

// take returns the ready spare, or nil.
func (s *spare) take() *instance {
	if !s.on {
		return nil
	}
	s.mu.Lock()
	in := s.in
	s.in = nil
	s.mu.Unlock()
	if in != nil && !in.Reusable() { // it died waiting
		_ = in.Close(context.Background())
		return nil
	}
	return in
}

// refill starts a new spare in the background unless one is ready or
// starting. It is called after an instance was handed out, so a function
// that cannot start never loops on failed spares.
func (s *spare) refill(m *module) {
	if !s.on {
		return
	}
	s.mu.Lock()
	if s.closed || s.in != nil || s.starting {
		s.mu.Unlock()
		return
	}
	s.starting = true
	settled := make(chan struct{})
	s.settled = settled
	s.mu.Unlock()
	go func() {
		defer close(settled)
		in, err := m.newInstance(context.Background())
		s.mu.Lock()
		s.starting = false
		keep := err == nil && !s.closed
		if keep {
			s.in = in
		}
		s.mu.Unlock()
		if err != nil {
			m.rt.log.Debug("process: spare instance did not start", "fn", m.spec.Function, "err", err)
		} else if !keep {
			_ = in.Close(context.Background())
		}
	}()
}

// wait returns once the last refill started has ended, ready or failed.
func (s *spare) wait() {
	s.mu.Lock()
	ch := s.settled
	s.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

// close closes the ready spare and keeps new ones from being kept.
func (s *spare) close(ctx context.Context) {
	s.mu.Lock()
	s.closed = true
	in := s.in
	s.in = nil
	s.mu.Unlock()
	if in != nil {
		_ = in.Close(ctx)
	}
}
