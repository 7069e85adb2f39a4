// Command hardenprobe runs inside a sandbox as a function would, and
// reports what the kernel lets it do, one "name result" line each, the
// result being "ok" or the errno's name. harden_test.go builds it as a
// static binary.
package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: hardenprobe attacks|work|x32|noop|mount-tmpfs|rawsock")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "attacks":
		attacks()
	case "work":
		work()
	case "x32":
		// A call of the x32 ABI: getpid with __X32_SYSCALL_BIT.
		_, _, e := unix.RawSyscall(0x40000000|unix.SYS_GETPID, 0, 0, 0)
		report("x32", e)
	case "noop":
	case "mount-tmpfs":
		report("mount-tmpfs", unix.Mount("none", "/tmp", "tmpfs", 0, ""))
	case "rawsock":
		report("packet-socket", sock(unix.AF_PACKET, unix.SOCK_RAW, 0))
		report("vsock-socket", sock(unix.AF_VSOCK, unix.SOCK_STREAM, 0))
		report("raw-ip-socket", sock(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP))
	default:
		fmt.Fprintln(os.Stderr, "unknown probe", os.Args[1])
		os.Exit(2)
	}
}

func report(name string, err error) {
	var e syscall.Errno
	switch {
	case err == nil:
		fmt.Println(name, "ok")
	case errors.As(err, &e) && e == 0:
		fmt.Println(name, "ok")
	case errors.As(err, &e):
		fmt.Println(name, unix.ErrnoName(e))
	default:
		fmt.Println(name, strings.ReplaceAll(err.Error(), " ", "_"))
	}
}

func sock(domain, typ, proto int) error {
	fd, err := unix.Socket(domain, typ, proto)
	if err == nil {
		unix.Close(fd)
	}
	return err
}

// inNewNamespaces runs this probe again with arg in new namespaces of
// flags, as root of a new user namespace when flags ask for one (what
// `unshare -Ur` does), and reports whether it could start and, if so,
// what it printed.
func inNewNamespaces(name string, flags uintptr, arg string) {
	self, err := os.Executable()
	if err != nil {
		report(name, err)
		return
	}
	cmd := exec.Command(self, arg)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flags}
	if flags&unix.CLONE_NEWUSER != 0 {
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
	}
	out, err := cmd.Output()
	if err != nil {
		report(name, err)
		return
	}
	fmt.Print(string(out))
}

func attacks() {
	// unshare -Urm, as clone does it, then mount a tmpfs as root of it.
	inNewNamespaces("userns-mount", unix.CLONE_NEWUSER|unix.CLONE_NEWNS, "mount-tmpfs")
	// A raw socket as root of a new user and network namespace.
	inNewNamespaces("userns-rawsock", unix.CLONE_NEWUSER|unix.CLONE_NEWNET, "rawsock")
	for _, ns := range []struct {
		name string
		flag int
	}{{"mount", unix.CLONE_NEWNS}, {"net", unix.CLONE_NEWNET}, {"time", unix.CLONE_NEWTIME}} {
		func() {
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			report("unshare-"+ns.name, unix.Unshare(ns.flag))
		}()
	}
	report("mount-tmpfs", unix.Mount("none", "/tmp", "tmpfs", 0, ""))
	report("packet-socket", sock(unix.AF_PACKET, unix.SOCK_RAW, 0))
	report("vsock-socket", sock(unix.AF_VSOCK, unix.SOCK_STREAM, 0))

	// A child of our own, which without the filter we may trace and read.
	child := exec.Command("/bin/sh", "-c", "read x")
	stdin, _ := child.StdinPipe()
	if err := child.Start(); err != nil {
		report("start-child", err)
	} else {
		pid := child.Process.Pid
		func() {
			runtime.LockOSThread()
			err := unix.PtraceAttach(pid)
			report("ptrace-attach", err)
			if err == nil {
				_ = unix.PtraceDetach(pid)
			}
		}()
		buf := make([]byte, 8)
		local := []unix.Iovec{{Base: &buf[0], Len: 8}}
		remote := []unix.RemoteIovec{{Base: uintptr(unsafe.Pointer(&buf[0])), Len: 8}}
		_, err := unix.ProcessVMReadv(pid, local, remote, 0)
		report("process-vm-readv", err)
		stdin.Close()
		_ = child.Process.Kill()
		_ = child.Wait()
	}

	_, err := unix.KeyctlInt(unix.KEYCTL_GET_KEYRING_ID, unix.KEY_SPEC_USER_KEYRING, 0, 0, 0)
	report("keyctl", err)
	attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_CPU_CLOCK, Bits: unix.PerfBitExcludeKernel | unix.PerfBitExcludeHv}
	attr.Size = uint32(unsafe.Sizeof(attr))
	fd, err := unix.PerfEventOpen(&attr, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err == nil {
		unix.Close(fd)
	}
	report("perf-event-open", err)
	// BPF_MAP_CREATE of a one-entry array.
	mapAttr := [4]uint32{2 /* BPF_MAP_TYPE_ARRAY */, 4, 4, 1}
	r, _, e := unix.Syscall(unix.SYS_BPF, 0 /* BPF_MAP_CREATE */, uintptr(unsafe.Pointer(&mapAttr)), unsafe.Sizeof(mapAttr))
	if e == 0 {
		unix.Close(int(r))
	}
	report("bpf", e)
	r, _, e = unix.Syscall(unix.SYS_PERSONALITY, 0x0040000 /* ADDR_NO_RANDOMIZE */, 0, 0)
	if e == 0 {
		_, _, _ = unix.Syscall(unix.SYS_PERSONALITY, r, 0, 0)
	}
	report("personality-no-randomize", e)
	report("clone3", clone3())
}

// clone3 calls clone3 with no arguments, which a kernel that runs it
// refuses with EINVAL and the filter answers ENOSYS: safe either way.
func clone3() error {
	_, _, e := unix.RawSyscall(unix.SYS_CLONE3, 0, 0, 0)
	return e
}

// work does what a function's runtime does: goroutines on many threads,
// a loopback listener, a subprocess with a pipe.
func work() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		report("listen", err)
		return
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			msg := fmt.Sprintf("hello %d", i)
			if _, err := c.Write([]byte(msg)); err != nil {
				errs <- err
				return
			}
			buf := make([]byte, len(msg))
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
				errs <- fmt.Errorf("echo: got %q, %v", buf, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	report("goroutines-loopback", <-errs)
	out, err := exec.Command("/bin/sh", "-c", "echo sub | tr a-z A-Z").Output()
	if err == nil && strings.TrimSpace(string(out)) != "SUB" {
		err = fmt.Errorf("subprocess said %q", out)
	}
	report("subprocess", err)
}
