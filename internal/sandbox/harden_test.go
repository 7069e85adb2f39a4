package sandbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The seccomp filter is checked three ways: run in a small BPF
// interpreter over chosen calls (TestFilterDecisions), applied by
// harden() to a process that still holds every capability, as the init
// does (TestHardenRefusesRoot), and in a real sandbox as a function
// meets it (TestHardened*).

// envHardenChild makes the test binary, re-executed, run hardenChild.
const envHardenChild = "MOTE_TEST_HARDEN_CHILD"

func init() {
	// Before TestMain: the child must not run the tests again.
	if os.Getenv(envHardenChild) != "" {
		os.Exit(hardenChild())
	}
}

// seccompData builds struct seccomp_data for the interpreter.
func seccompData(arch, nr uint32, args ...uint64) []byte {
	b := make([]byte, 64)
	binary.LittleEndian.PutUint32(b[0:], nr)
	binary.LittleEndian.PutUint32(b[4:], arch)
	for i, a := range args {
		binary.LittleEndian.PutUint64(b[16+8*i:], a)
	}
	return b
}

// runFilter interprets the classic BPF instructions buildFilter emits,
// and fails on any other, on a jump out of the program or on running off
// its end.
func runFilter(prog []unix.SockFilter, data []byte) (uint32, error) {
	var a uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			if int(in.K)+4 > len(data) {
				return 0, fmt.Errorf("pc %d: load past seccomp_data", pc)
			}
			a = binary.LittleEndian.Uint32(data[in.K:])
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			a &= in.K
		case unix.BPF_RET | unix.BPF_K:
			return in.K, nil
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(in.K)
			if pc+1 >= len(prog) {
				return 0, fmt.Errorf("pc %d: jump out of the program", pc)
			}
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			var cond bool
			switch in.Code &^ (unix.BPF_JMP | unix.BPF_K) {
			case unix.BPF_JEQ:
				cond = a == in.K
			case unix.BPF_JGE:
				cond = a >= in.K
			case unix.BPF_JSET:
				cond = a&in.K != 0
			}
			if cond {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
			if pc+1 >= len(prog) {
				return 0, fmt.Errorf("pc %d: jump out of the program", pc)
			}
		default:
			return 0, fmt.Errorf("pc %d: unexpected instruction %#x", pc, in.Code)
		}
	}
	return 0, errors.New("ran off the end of the program")
}

func retName(r uint32) string {
	switch r {
	case retAllow:
		return "allow"
	case retEPERM:
		return "EPERM"
	case retENOSYS:
		return "ENOSYS"
	case retEAFNOSUPPORT:
		return "EAFNOSUPPORT"
	case retKill:
		return "kill"
	}
	return fmt.Sprintf("%#x", r)
}

func TestFilterDecisions(t *testing.T) {
	p, err := policy()
	if err != nil {
		t.Fatal(err)
	}
	prog := buildFilter(p)
	if len(prog) > unix.BPF_MAXINSNS {
		t.Fatalf("filter has %d instructions, the kernel takes at most %d", len(prog), unix.BPF_MAXINSNS)
	}
	native := p.arch
	const (
		sigchld    = uint64(unix.SIGCHLD)
		threadFlag = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD | unix.CLONE_SYSVSEM
	)
	tests := []struct {
		name string
		arch uint32
		nr   uintptr
		args []uint64
		want string
	}{
		{"read", native, unix.SYS_READ, nil, "allow"},
		{"exit_group", native, unix.SYS_EXIT_GROUP, nil, "allow"},
		{"execve", native, unix.SYS_EXECVE, nil, "allow"},
		{"setresuid (the init's child)", native, unix.SYS_SETRESUID, nil, "allow"},
		{"another architecture", unix.AUDIT_ARCH_I386, unix.SYS_READ, nil, "kill"},
		{"arm on arm64 or x86-64", unix.AUDIT_ARCH_ARM, 20, nil, "kill"},
		{"fork", native, unix.SYS_CLONE, []uint64{sigchld}, "allow"},
		{"thread", native, unix.SYS_CLONE, []uint64{threadFlag}, "allow"},
		{"vfork with pidfd", native, unix.SYS_CLONE, []uint64{unix.CLONE_VM | unix.CLONE_VFORK | unix.CLONE_PIDFD | sigchld}, "allow"},
		{"clone NEWUSER", native, unix.SYS_CLONE, []uint64{unix.CLONE_NEWUSER | sigchld}, "EPERM"},
		{"clone NEWNS", native, unix.SYS_CLONE, []uint64{unix.CLONE_NEWNS | sigchld}, "EPERM"},
		{"clone NEWNET", native, unix.SYS_CLONE, []uint64{unix.CLONE_NEWNET}, "EPERM"},
		{"clone NEWPID", native, unix.SYS_CLONE, []uint64{unix.CLONE_NEWPID}, "EPERM"},
		{"clone NEWCGROUP", native, unix.SYS_CLONE, []uint64{unix.CLONE_NEWCGROUP}, "EPERM"},
		{"unshare FILES", native, unix.SYS_UNSHARE, []uint64{unix.CLONE_FILES | unix.CLONE_FS}, "allow"},
		{"unshare NEWNS", native, unix.SYS_UNSHARE, []uint64{unix.CLONE_NEWNS}, "EPERM"},
		{"unshare NEWUTS", native, unix.SYS_UNSHARE, []uint64{unix.CLONE_NEWUTS}, "EPERM"},
		{"unshare NEWIPC", native, unix.SYS_UNSHARE, []uint64{unix.CLONE_NEWIPC}, "EPERM"},
		// 0x80 is also a call number (rt_sigtimedwait on x86-64): a
		// filter that tests an argument and then goes on comparing call
		// numbers without reloading one lets this through.
		{"unshare NEWTIME", native, unix.SYS_UNSHARE, []uint64{unix.CLONE_NEWTIME}, "EPERM"},
		{"clone3", native, unix.SYS_CLONE3, nil, "ENOSYS"},
		{"setns", native, unix.SYS_SETNS, nil, "EPERM"},
		{"mount", native, unix.SYS_MOUNT, nil, "EPERM"},
		{"ptrace", native, unix.SYS_PTRACE, nil, "EPERM"},
		{"bpf", native, unix.SYS_BPF, nil, "EPERM"},
		{"perf_event_open", native, unix.SYS_PERF_EVENT_OPEN, nil, "EPERM"},
		{"keyctl", native, unix.SYS_KEYCTL, nil, "EPERM"},
		{"io_uring_setup", native, unix.SYS_IO_URING_SETUP, nil, "EPERM"},
		{"personality query", native, unix.SYS_PERSONALITY, []uint64{0xffffffff}, "allow"},
		{"personality PER_LINUX", native, unix.SYS_PERSONALITY, []uint64{0}, "allow"},
		{"personality ADDR_NO_RANDOMIZE", native, unix.SYS_PERSONALITY, []uint64{0x0040000}, "EPERM"},
		{"personality PER_LINUX32", native, unix.SYS_PERSONALITY, []uint64{8}, "EPERM"},
		{"tcp socket", native, unix.SYS_SOCKET, []uint64{unix.AF_INET, unix.SOCK_STREAM | unix.SOCK_CLOEXEC}, "allow"},
		{"udp6 socket", native, unix.SYS_SOCKET, []uint64{unix.AF_INET6, unix.SOCK_DGRAM}, "allow"},
		{"unix socket", native, unix.SYS_SOCKET, []uint64{unix.AF_UNIX, unix.SOCK_STREAM}, "allow"},
		{"netlink socket", native, unix.SYS_SOCKET, []uint64{unix.AF_NETLINK, unix.SOCK_RAW | unix.SOCK_CLOEXEC}, "allow"},
		{"packet socket", native, unix.SYS_SOCKET, []uint64{unix.AF_PACKET, unix.SOCK_DGRAM}, "EAFNOSUPPORT"},
		{"vsock socket", native, unix.SYS_SOCKET, []uint64{unix.AF_VSOCK, unix.SOCK_STREAM}, "EAFNOSUPPORT"},
		{"unix socket", native, unix.SYS_SOCKET, []uint64{unix.AF_UNIX, unix.SOCK_STREAM}, "allow"},
		{"netlink raw socket", native, unix.SYS_SOCKET, []uint64{unix.AF_NETLINK, unix.SOCK_RAW}, "allow"},
		{"tcp6 socket", native, unix.SYS_SOCKET, []uint64{unix.AF_INET6, unix.SOCK_STREAM | unix.SOCK_CLOEXEC}, "allow"},
		{"raw IPv4 socket", native, unix.SYS_SOCKET, []uint64{unix.AF_INET, unix.SOCK_RAW | unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC}, "EPERM"},
		{"raw IPv6 socket", native, unix.SYS_SOCKET, []uint64{unix.AF_INET6, unix.SOCK_RAW}, "EPERM"},
		{"a call no list names", native, 1000, nil, "ENOSYS"},
	}
	if p.x32 {
		tests = append(tests, struct {
			name string
			arch uint32
			nr   uintptr
			args []uint64
			want string
		}{"x32 ABI", native, x32SyscallBit | unix.SYS_READ, nil, "kill"})
	}
	for _, tt := range tests {
		r, err := runFilter(prog, seccompData(tt.arch, uint32(tt.nr), tt.args...))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := retName(r); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, got, tt.want)
		}
	}
	// Every call number ends in a return, and the lists say what the
	// filter does.
	decided := map[uintptr]string{}
	for _, l := range []struct {
		nrs  []uintptr
		want string
	}{{p.allow, "allow"}, {p.refuse, "EPERM"}, {p.enosys, "ENOSYS"}} {
		for _, nr := range l.nrs {
			if prev, ok := decided[nr]; ok {
				t.Errorf("call %d is listed twice (%s, %s)", nr, prev, l.want)
			}
			decided[nr] = l.want
		}
	}
	for _, nr := range []uintptr{unix.SYS_CLONE, unix.SYS_UNSHARE, unix.SYS_SOCKET, unix.SYS_PERSONALITY} {
		if _, ok := decided[nr]; ok {
			t.Errorf("call %d is decided on its arguments but also listed", nr)
		}
	}
	for nr := uintptr(0); nr < 1024; nr++ {
		r, err := runFilter(prog, seccompData(native, uint32(nr)))
		if err != nil {
			t.Fatalf("call %d: %v", nr, err)
		}
		if want, ok := decided[nr]; ok && retName(r) != want {
			t.Errorf("call %d: got %s, want %s", nr, retName(r), want)
		}
	}
}

// hardenChild runs as root in its own mount, network and UTS namespaces:
// it applies harden() as the init does, then tries, holding every
// capability, what the filter must refuse, and runs the setuid program
// named by $MOTE_TEST_SETUID as an unprivileged user. It prints one
// "name result" line each.
func hardenChild() int {
	// Nothing this child mounts, were the filter to let it, reaches the
	// host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		fmt.Println("setup", err)
		return 1
	}
	start := time.Now()
	if err := harden(); err != nil {
		fmt.Println("harden", err)
		return 1
	}
	fmt.Println("harden-took", time.Since(start))
	say := func(name string, err error) {
		var e syscall.Errno
		switch {
		case err == nil:
			fmt.Println(name, "ok")
		case errors.As(err, &e):
			fmt.Println(name, unix.ErrnoName(e))
		default:
			fmt.Println(name, strings.ReplaceAll(err.Error(), " ", "_"))
		}
	}
	errno := func(_ uintptr, _ uintptr, e syscall.Errno) error {
		if e == 0 {
			return nil
		}
		return e
	}
	sock := func(domain, typ, proto int) error {
		fd, err := unix.Socket(domain, typ, proto)
		if err == nil {
			unix.Close(fd)
		}
		return err
	}

	dir, err := os.MkdirTemp("", "mote-harden-mnt-")
	if err == nil {
		defer func() {
			_ = unix.Unmount(dir, unix.MNT_DETACH) // if the mount below was let through
			os.Remove(dir)
		}()
	}
	say("mount", unix.Mount("none", dir, "tmpfs", 0, ""))
	say("unshare-mount", unix.Unshare(unix.CLONE_NEWNS))
	say("unshare-net", unix.Unshare(unix.CLONE_NEWNET))
	say("unshare-cgroup", unix.Unshare(unix.CLONE_NEWCGROUP))
	say("clone-plain", exec.Command("/bin/true").Run())
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER}
	say("clone-newuser", cmd.Run())
	if fd, err := unix.Open("/proc/self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
		say("setns", unix.Setns(fd, unix.CLONE_NEWNET))
		unix.Close(fd)
	}
	say("chroot", unix.Chroot("/"))
	say("sethostname", unix.Sethostname([]byte("escaped")))
	say("packet-socket", sock(unix.AF_PACKET, unix.SOCK_RAW, 0))
	say("vsock-socket", sock(unix.AF_VSOCK, unix.SOCK_STREAM, 0))
	say("raw-ip-socket", sock(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP))
	say("raw-ip6-socket", sock(unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_ICMPV6))
	say("netlink-socket", sock(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE))
	say("tcp-socket", sock(unix.AF_INET, unix.SOCK_STREAM, 0))
	mapAttr := [4]uint32{2 /* BPF_MAP_TYPE_ARRAY */, 4, 4, 1}
	say("bpf", errno(unix.Syscall(unix.SYS_BPF, 0 /* BPF_MAP_CREATE */, uintptr(unsafe.Pointer(&mapAttr)), unsafe.Sizeof(mapAttr))))
	attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_CPU_CLOCK, Bits: unix.PerfBitExcludeKernel | unix.PerfBitExcludeHv}
	attr.Size = uint32(unsafe.Sizeof(attr))
	fd, err := unix.PerfEventOpen(&attr, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err == nil {
		unix.Close(fd)
	}
	say("perf-event-open", err)
	_, err = unix.KeyctlInt(unix.KEYCTL_GET_KEYRING_ID, unix.KEY_SPEC_USER_KEYRING, 0, 0, 0)
	say("keyctl", err)
	var uring [120]byte // struct io_uring_params
	say("io-uring", errno(unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&uring)), 0)))
	say("userfaultfd", errno(unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|1 /* UFFD_USER_MODE_ONLY */, 0, 0)))
	say("personality-no-randomize", errno(unix.Syscall(unix.SYS_PERSONALITY, 0x0040000, 0, 0)))
	say("personality-query", errno(unix.Syscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0)))
	say("clone3", errno(unix.RawSyscall(unix.SYS_CLONE3, 0, 0, 0)))
	child := exec.Command("/bin/sleep", "10")
	if err := child.Start(); err == nil {
		say("ptrace-attach", unix.PtraceAttach(child.Process.Pid))
		_ = child.Process.Kill()
		_ = child.Wait()
	}
	// TSYNC put the filter and no_new_privs on every thread.
	threads, _ := filepath.Glob("/proc/self/task/*/status")
	bad := 0
	for _, f := range threads {
		b, _ := os.ReadFile(f)
		if !strings.Contains(string(b), "Seccomp:\t2\n") || !strings.Contains(string(b), "NoNewPrivs:\t1\n") {
			bad++
		}
	}
	fmt.Println("threads", len(threads), "unfiltered", bad)

	if p := os.Getenv("MOTE_TEST_SETUID"); p != "" {
		cmd := exec.Command(p, "-u")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
		out, err := cmd.Output()
		if err != nil {
			say("setuid-euid", err)
		} else {
			fmt.Println("setuid-euid", strings.TrimSpace(string(out)))
		}
	}
	return 0
}

// TestHardenRefusesRoot applies harden() to a process that holds every
// capability, as the init does before it starts a function, and checks
// that the filter refuses what a capability would otherwise allow, and
// that a setuid-root program started as another user does not run as
// root. Without harden() every refusal below is "ok" and the setuid
// program reports euid 0.
func TestHardenRefusesRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	// A setuid-root copy of id, reachable by uid 65534.
	dir, err := os.MkdirTemp("", "mote-harden-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	id := filepath.Join(dir, "id")
	copyFile(t, "/usr/bin/id", id)
	if err := os.Chown(id, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(id, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), envHardenChild+"=1", "MOTE_TEST_SETUID="+id)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS | unix.CLONE_NEWNET | unix.CLONE_NEWUTS}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	got := parseResults(string(out))
	want := map[string]string{
		"mount": "EPERM", "unshare-mount": "EPERM", "unshare-net": "EPERM",
		"unshare-cgroup": "EPERM", "clone-plain": "ok", "clone-newuser": "EPERM", "setns": "EPERM",
		"chroot": "EPERM", "sethostname": "EPERM", "packet-socket": "EAFNOSUPPORT", "vsock-socket": "EAFNOSUPPORT",
		"raw-ip-socket": "EPERM", "raw-ip6-socket": "EPERM", "netlink-socket": "ok",
		"tcp-socket": "ok", "bpf": "EPERM", "perf-event-open": "EPERM",
		"keyctl": "EPERM", "io-uring": "EPERM", "userfaultfd": "EPERM",
		"personality-no-randomize": "EPERM", "personality-query": "ok",
		"clone3": "ENOSYS", "ptrace-attach": "EPERM", "setuid-euid": "65534",
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: got %q, want %q", name, got[name], w)
		}
	}
	if !strings.Contains(string(out), "unfiltered 0\n") {
		t.Errorf("some threads lack the filter or no_new_privs: %s", out)
	}
	if t.Failed() {
		t.Logf("child output:\n%s", out)
	}
	t.Logf("harden() took %s", got["harden-took"])
}

// parseResults reads "name result" lines; for a name given twice it
// keeps the first line that differs from "ok".
func parseResults(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		name, res, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if prev, seen := m[name]; seen && prev != "ok" {
			continue
		}
		m[name] = res
	}
	return m
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// functionDir makes a directory the sandboxed user can read and enter,
// as a function's code directory.
func functionDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mote-harden-fn-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

var (
	probeOnce sync.Once
	probeBin  []byte
	probeErr  error
)

// probeDir returns a function directory holding hardenprobe, built once
// as a static Go binary.
func probeDir(t *testing.T) string {
	t.Helper()
	probeOnce.Do(func() {
		tmp, err := os.MkdirTemp("", "mote-hardenprobe-")
		if err != nil {
			probeErr = err
			return
		}
		defer os.RemoveAll(tmp)
		out := filepath.Join(tmp, "hardenprobe")
		cmd := exec.Command(goTool(), "build", "-o", out, "./testdata/hardenprobe")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			probeErr = fmt.Errorf("build hardenprobe: %v\n%s", err, b)
			return
		}
		probeBin, probeErr = os.ReadFile(out)
	})
	if probeErr != nil {
		t.Fatal(probeErr)
	}
	dir := functionDir(t)
	if err := os.WriteFile(filepath.Join(dir, "hardenprobe"), probeBin, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// runIn runs argv in a sandbox with dir as its code directory and
// returns its output and exit status. With loopback, the process's
// network namespace gets its loopback interface up (as Proc.Listen does
// for the Runtime API).
func runIn(t *testing.T, s *Sandbox, name string, argv []string, dir string, loopback bool) (string, string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Start(Options{Name: name, Stdout: w, Stderr: w, PidsLimit: 256})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if loopback {
		ln, err := p.Listen()
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
	}
	env := []string{"PATH=/usr/bin:/bin", "HOME=/tmp"}
	if err := p.Exec(argv, env, dir); err != nil {
		t.Fatal(err)
	}
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		r.Close()
		done <- b
	}()
	var out []byte
	select {
	case out = <-done:
	case <-time.After(60 * time.Second):
		p.Kill()
		out = <-done
		t.Errorf("%v: still running after 60s", argv)
	}
	<-p.Done()
	return string(out), p.ExitStatus()
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: without it the sandbox cannot switch user or drop capabilities")
	}
}

// TestHardenedStatus checks what the kernel says of a function's process:
// no capability in any set, no_new_privs, a seccomp filter; and, where
// the sandbox has its own PID namespace and /proc, that every thread of
// the init has the filter too. Before harden(), NoNewPrivs was 0,
// Seccomp 0 and CapBnd full.
func TestHardenedStatus(t *testing.T) {
	needRoot(t)
	s := newSandbox(t)
	script := "cat /proc/self/status; grep -h '^Seccomp:' /proc/1/task/*/status | sed 's/^/init-/'"
	out, status := runIn(t, s, "status", []string{"sh", "-c", script}, "/", false)
	if status != "exit status 0" {
		t.Fatalf("exit: got %q\n%s", status, out)
	}
	fields := map[string]string{}
	initThreads, initFiltered := 0, 0
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if k == "init-Seccomp" {
			initThreads++
			if v == "2" {
				initFiltered++
			}
			continue
		}
		fields[k] = v
	}
	const none = "0000000000000000"
	want := map[string]string{
		"CapInh": none, "CapPrm": none, "CapEff": none, "CapBnd": none, "CapAmb": none,
		"NoNewPrivs": "1", "Seccomp": "2",
	}
	for k, w := range want {
		if fields[k] != w {
			t.Errorf("%s: got %q, want %q", k, fields[k], w)
		}
	}
	ns := strings.Join(s.Namespaces(), ",")
	if strings.Contains(ns, "pid") && strings.Contains(ns, "mount") && (initThreads == 0 || initFiltered != initThreads) {
		t.Errorf("init threads with the filter: got %d of %d, want all", initFiltered, initThreads)
	}
}

// TestHardenedAttacks runs, as a function, what issue 10 found open and
// what the filter closes besides. Before harden(): a user namespace let
// the function mount a tmpfs and open packet and raw sockets, and
// ptrace, process_vm_readv, keyctl, perf_event_open and personality all
// worked. (bpf and plain mount were already refused here, by
// kernel.unprivileged_bpf_disabled and the missing capability; the
// filter refuses them whatever the sysctl says.)
func TestHardenedAttacks(t *testing.T) {
	needRoot(t)
	s := newSandbox(t)
	dir := probeDir(t)
	out, status := runIn(t, s, "attacks", []string{"./hardenprobe", "attacks"}, dir, false)
	if status != "exit status 0" {
		t.Fatalf("exit: got %q\n%s", status, out)
	}
	got := parseResults(out)
	want := map[string]string{
		"userns-mount": "EPERM", "userns-rawsock": "EPERM",
		"unshare-mount": "EPERM", "unshare-net": "EPERM", "unshare-time": "EPERM",
		"mount-tmpfs": "EPERM", "packet-socket": "EAFNOSUPPORT", "vsock-socket": "EAFNOSUPPORT",
		"ptrace-attach": "EPERM", "process-vm-readv": "EPERM",
		"keyctl": "EPERM", "perf-event-open": "EPERM", "bpf": "EPERM",
		"personality-no-randomize": "EPERM", "clone3": "ENOSYS",
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: got %q, want %q", name, got[name], w)
		}
	}
	if t.Failed() {
		t.Logf("probe output:\n%s", out)
	}
}

// TestHardenedUnshareCommand is the finding as reported: `unshare -Urm`
// made the function root of a new user namespace, where it could mount.
// (Run from "/", the init's read-only bind of the code directory over
// "/" makes the kernel see a chroot, which refuses user namespaces on
// its own: the code directory here is elsewhere, as a function's is.)
func TestHardenedUnshareCommand(t *testing.T) {
	needRoot(t)
	if _, err := os.Stat("/usr/bin/unshare"); err != nil {
		t.Skip("no /usr/bin/unshare")
	}
	s := newSandbox(t)
	out, status := runIn(t, s, "unshare", []string{"sh", "-c", "unshare -Urm sh -c 'mount -t tmpfs none /tmp && echo mounted'; echo rc=$?; unshare -m true; echo rc=$?"}, functionDir(t), false)
	if status != "exit status 0" {
		t.Fatalf("exit: got %q\n%s", status, out)
	}
	if strings.Contains(out, "mounted") || strings.Count(out, "rc=1") != 2 || strings.Count(out, "Operation not permitted") != 2 {
		t.Errorf("unshare: got %q, want both refused with EPERM", out)
	}
}

// TestHardenedX32 calls getpid through the x32 ABI, which the filter's
// architecture check kills (without it, such a call reaches a kernel
// built with x32 support unfiltered).
func TestHardenedX32(t *testing.T) {
	needRoot(t)
	if runtime.GOARCH != "amd64" {
		t.Skip("x32 is an x86-64 ABI")
	}
	s := newSandbox(t)
	dir := probeDir(t)
	out, status := runIn(t, s, "x32", []string{"./hardenprobe", "x32"}, dir, false)
	if want := fmt.Sprintf("exit status %d", 128+int(unix.SIGSYS)); status != want {
		t.Errorf("exit: got %q, want %q (killed by SIGSYS)\n%s", status, want, out)
	}
}

// TestHardenedRuntimesWork runs real runtimes under the filter: each
// reports the Seccomp field of its own status (so it fails without
// harden()) and does the work a function's runtime does: threads,
// subprocesses, a loopback listener.
func TestHardenedRuntimesWork(t *testing.T) {
	needRoot(t)
	s := newSandbox(t)
	tests := []struct {
		name  string
		argv  []string
		probe bool   // run in the hardenprobe directory
		need  string // an executable that must exist, else skip
		want  []string
	}{
		{
			name: "shell",
			argv: []string{"/bin/sh", "-c", `echo abc | tr a-z A-Z; x=$(sh -c 'echo nested'); echo $x; sleep 0.01 & wait; grep Seccomp: /proc/self/status | tr -d '\t'`},
			want: []string{"ABC", "nested", "Seccomp:2"},
		},
		{
			name: "go static binary",
			argv: []string{"/bin/sh", "-c", "./hardenprobe work && grep Seccomp: /proc/self/status | tr -d '\t'"}, probe: true,
			want: []string{"goroutines-loopback ok", "subprocess ok", "Seccomp:2"},
		},
		{
			name: "python", need: "/usr/bin/python3",
			argv: []string{"/usr/bin/python3", "-c", pythonWork},
			want: []string{"seccomp 2", "threads 140", "subprocess sub", "multiprocessing 2 0", "http pong"},
		},
		{
			name: "node", need: "/usr/bin/node",
			argv: []string{"/usr/bin/node", "-e", nodeWork},
			want: []string{"seccomp 2", "subprocess sub", "worker 42", "http pong"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.need != "" {
				if _, err := os.Stat(tt.need); err != nil {
					t.Skipf("no %s", tt.need)
				}
			}
			dir := "/"
			if tt.probe {
				dir = probeDir(t)
			}
			out, status := runIn(t, s, "work", tt.argv, dir, true)
			if status != "exit status 0" {
				t.Errorf("exit: got %q\n%s", status, out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			for _, w := range tt.want {
				found := false
				for _, l := range lines {
					found = found || strings.TrimSpace(l) == w
				}
				if !found {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

const pythonWork = `
import http.server, multiprocessing as mp, subprocess, threading, urllib.request

def seccomp():
    return [l.split()[1] for l in open('/proc/self/status') if l.startswith('Seccomp:')][0]

squares = []
def square(i):
    squares.append(i * i)
ts = [threading.Thread(target=square, args=(i,)) for i in range(8)]
for t in ts: t.start()
for t in ts: t.join()

sub = subprocess.run(['/bin/sh', '-c', 'echo sub'], capture_output=True, text=True).stdout.strip()

def child(conn):
    conn.send(seccomp())
    conn.close()
a, b = mp.Pipe()
p = mp.get_context('fork').Process(target=child, args=(b,))
p.start()
got = a.recv()
p.join()

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b'pong')
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
body = urllib.request.urlopen('http://127.0.0.1:%d/' % srv.server_address[1]).read().decode()
srv.shutdown()

print('seccomp', seccomp())
print('threads', sum(squares))
print('subprocess', sub)
print('multiprocessing', got, p.exitcode)
print('http', body)
`

const nodeWork = `
const {spawnSync} = require('child_process');
const {Worker} = require('worker_threads');
const fs = require('fs');
const http = require('http');
const seccomp = fs.readFileSync('/proc/self/status', 'utf8').match(/Seccomp:\s+(\d)/)[1];
const sub = spawnSync('/bin/sh', ['-c', 'echo sub']).stdout.toString().trim();
const w = new Worker('require("worker_threads").parentPort.postMessage(6*7)', {eval: true});
w.on('message', (m) => {
  const srv = http.createServer((q, s) => s.end('pong')).listen(0, '127.0.0.1', () => {
    http.get({host: '127.0.0.1', port: srv.address().port}, (r) => {
      let b = '';
      r.on('data', (d) => b += d);
      r.on('end', () => {
        console.log('seccomp', seccomp);
        console.log('subprocess', sub);
        console.log('worker', m);
        console.log('http', b);
        srv.close();
        w.terminate();
      });
    });
  });
});
`

// BenchmarkSandboxStart measures a fresh sandbox from Start to its
// command running (its first byte of output), the part of a cold start
// harden() adds to.
func BenchmarkSandboxStart(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	s, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	buf := make([]byte, 1)
	for i := 0; b.Loop(); i++ {
		r, w, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		p, err := s.Start(Options{Name: fmt.Sprintf("bench-%d", i), Stdout: w})
		w.Close()
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Exec([]string{"/bin/echo", "x"}, nil, "/"); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(r, buf); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		r.Close()
		p.Close()
		b.StartTimer()
	}
}

// BenchmarkBuildFilter is the filter's share of each start: the init
// assembles it anew.
func BenchmarkBuildFilter(b *testing.B) {
	for b.Loop() {
		p, err := policy()
		if err != nil {
			b.Fatal(err)
		}
		_ = buildFilter(p)
	}
}

// TestSearchSpansLongJump checks the search where a subtree is longer
// than a conditional jump reaches (the policy's own is not, yet).
func TestSearchSpansLongJump(t *testing.T) {
	var s []span
	for nr := uint32(0); nr < 600; nr++ {
		ret := uint32(retAllow)
		if nr%2 == 1 {
			ret = retEPERM
		}
		s = append(s, span{first: nr * 3, ret: ret})
	}
	prog := append([]unix.SockFilter{{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: offNr}}, searchSpans(nil, s)...)
	if got, want := searchLen(s), len(prog)-1; got != want {
		t.Errorf("searchLen: got %d, want %d", got, want)
	}
	long := false
	for _, in := range prog {
		long = long || in.Code == unix.BPF_JMP|unix.BPF_JA
	}
	if !long {
		t.Fatal("no long jump in the program: the test tests nothing")
	}
	for nr := uint32(0); nr < 1900; nr++ {
		want := uint32(retAllow)
		if i := min(nr/3, 599); i%2 == 1 {
			want = retEPERM
		}
		got, err := runFilter(prog, seccompData(0, nr))
		if err != nil {
			t.Fatalf("call %d: %v", nr, err)
		}
		if got != want {
			t.Fatalf("call %d: got %s, want %s", nr, retName(got), retName(want))
		}
	}
}
