package sandbox

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// listenInNetns opens a TCP listener on addr inside the network namespace
// of pid, with its loopback interface up. A socket belongs to the
// namespace it was created in, so one locked OS thread enters the
// namespace, creates it and comes back; Mote serves it like any other.
// The sandboxed process reaches it at addr and nothing else: its namespace
// has no other interface.
func listenInNetns(pid int, addr string) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		ln, err, back := listenOnThread(pid, addr)
		if back {
			runtime.UnlockOSThread()
		} // else the thread stays in the wrong namespace: let it die with this goroutine.
		ch <- result{ln, err}
	}()
	r := <-ch
	return r.ln, r.err
}

// listenOnThread does the work on a locked thread; back reports whether
// the thread is in its original namespace again.
func listenOnThread(pid int, addr string) (ln net.Listener, err error, back bool) {
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, fmt.Errorf("sandbox: open own netns: %w", err), true
	}
	defer orig.Close()
	target, err := os.Open("/proc/" + strconv.Itoa(pid) + "/ns/net")
	if err != nil {
		return nil, fmt.Errorf("sandbox: open function netns: %w", err), true
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("sandbox: enter function netns: %w", err), true
	}
	ln, err = func() (net.Listener, error) {
		if err := loopbackUp(); err != nil {
			return nil, err
		}
		return net.Listen("tcp", addr)
	}()
	if e := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); e != nil {
		if ln != nil {
			ln.Close()
		}
		return nil, fmt.Errorf("sandbox: leave function netns: %w", e), false
	}
	return ln, err, true
}

// loopbackUp brings "lo" up in the current thread's network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sandbox: socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("sandbox: get lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("sandbox: bring lo up: %w", err)
	}
	return nil
}
