package sandbox

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"unsafe"

	"golang.org/x/sys/unix"
)

// harden takes from the calling thread, before it starts the function's
// command, every way that command could gain privileges or reach kernel
// surface it has no use for, in an order where each step still has the
// privilege it needs:
//
//   - every capability leaves the bounding set, and the inheritable and
//     ambient sets are emptied, so nothing the function executes (a
//     setuid-root program, a file with capabilities) can regain one;
//   - no_new_privs is set, so setuid and setgid bits and file
//     capabilities are ignored at execve;
//   - a seccomp allow-list (see policy) is installed on every thread of
//     this process, so the command inherits it whichever thread forks it.
//
// The bounding set and the capability sets belong to a thread, and the
// command inherits those of the thread that forks it: harden locks the
// calling goroutine to its thread, and must be called on the goroutine
// that then starts the command. That thread keeps its effective
// capabilities (it still has to switch the command to its uid); the
// command loses them with the uid switch and cannot get them back.
//
// The filter stays on the init too: what it still does (wait, kill,
// forward signals, start the command as another user) is all allowed.
func harden() error {
	runtime.LockOSThread()
	if err := dropCapabilities(); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	p, err := policy()
	if err != nil {
		return err
	}
	return installFilter(buildFilter(p))
}

// dropCapabilities empties the calling thread's bounding, ambient and
// inheritable capability sets.
func dropCapabilities() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	// Only a thread with CAP_SETPCAP may shrink its bounding set. Mote
	// not run as root has none: its functions run as its own user, whose
	// bounding set no_new_privs keeps setuid programs from using.
	if data[0].Effective&(1<<unix.CAP_SETPCAP) != 0 {
		if err := dropBoundingSet(); err != nil {
			return err
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("clear inheritable capabilities: %w", err)
	}
	return nil
}

// dropBoundingSet drops every capability the kernel knows from the
// calling thread's bounding set. The kernel answers EINVAL past its last
// capability (/proc/sys/kernel/cap_last_cap), which this does not need
// /proc to find.
func dropBoundingSet() error {
	n := 0
	for ; n < 64; n++ {
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(n), 0, 0, 0)
		if errors.Is(err, unix.EINVAL) {
			break
		}
		if err != nil {
			return fmt.Errorf("drop capability %d from the bounding set: %w", n, err)
		}
	}
	if n == 0 {
		return errors.New("drop capabilities: the kernel knows no capability")
	}
	return nil
}

// installFilter loads prog as a seccomp filter on every thread of the
// process (SECCOMP_FILTER_FLAG_TSYNC). The caller must have set
// no_new_privs or hold CAP_SYS_ADMIN.
func installFilter(prog []unix.SockFilter) error {
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if errno != 0 {
		return fmt.Errorf("install seccomp filter: %w", errno)
	}
	if r != 0 {
		// With TSYNC, a positive answer names a thread that could not
		// take the filter; then no thread has it.
		return fmt.Errorf("install seccomp filter: thread %d cannot take it", r)
	}
	return nil
}

// Errnos the filter answers with.
const (
	retAllow  = unix.SECCOMP_RET_ALLOW
	retEPERM  = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	retENOSYS = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	// retEAFNOSUPPORT answers a socket of a family functions may not use.
	retEAFNOSUPPORT = unix.SECCOMP_RET_ERRNO | uint32(unix.EAFNOSUPPORT)
	retKill         = unix.SECCOMP_RET_KILL_PROCESS
)

// nsFlagsMask holds every flag of clone and unshare that asks for a new
// namespace. CLONE_NEWTIME (0x80) shares its bit with the exit signal in
// clone's flags, where a valid signal (at most 64) never sets it.
const nsFlagsMask = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS |
	unix.CLONE_NEWIPC | unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET |
	unix.CLONE_NEWTIME

// A filterPolicy is what the seccomp filter decides for each system call
// of the native architecture; any other call gets ENOSYS, the answer of a
// kernel that lacks it, so that a C library falls back to an older call.
type filterPolicy struct {
	// allow lists the calls allowed whatever their arguments.
	allow []uintptr
	// refuse lists calls answered EPERM, as a kernel answers a process
	// without the privilege: programs that probe for them fall back.
	refuse []uintptr
	// enosys lists calls answered ENOSYS: clone3, whose flags are in
	// memory a filter cannot read, so that libc falls back to clone.
	enosys []uintptr
	// arch is the AUDIT_ARCH_ value of the native architecture; calls of
	// any other are killed.
	arch uint32
	// x32 kills calls of the x32 ABI, which x86-64 reports with the
	// native arch value and the call number's bit 30 set.
	x32 bool
}

// buildFilter assembles p into a classic BPF program for seccomp:
//
//	the architecture is not the native one (or, on x86-64, the call is
//	of the x32 ABI)                                       -> kill the process
//	clone, unshare asking for a namespace                 -> EPERM
//	personality other than Linux's default or a query     -> EPERM
//	socket of SOCK_RAW of AF_INET/AF_INET6 -> EPERM; of a family other
//	than AF_UNIX, AF_INET, AF_INET6, AF_NETLINK -> EAFNOSUPPORT
//	p.allow -> allowed; p.refuse -> EPERM; p.enosys, anything else -> ENOSYS
//
// The call numbers are cut into spans of consecutive numbers decided
// alike, and the program finds a call's span by binary search (about
// eight tests) rather than by a test per call: the kernel runs the
// filter on every call it cannot decide from its action cache, and
// builds that cache, when the filter is installed, by running the filter
// for every call number, so a list of tests made installing cost ~1 ms.
// Each span's block always returns, so no jump crosses another's block
// and the call number stays in the accumulator until a block loads an
// argument.
func buildFilter(p filterPolicy) []unix.SockFilter {
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: offArch},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: p.arch, Jt: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: retKill},
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: offNr},
	}
	if p.x32 {
		prog = append(prog,
			unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, K: x32SyscallBit, Jf: 1},
			unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: retKill})
	}
	sp := spans(p)
	return searchSpans(slices.Grow(prog, searchLen(sp)), sp)
}

// x32SyscallBit marks a call of the x32 ABI (__X32_SYSCALL_BIT).
const x32SyscallBit = 0x40000000

// A span is the call numbers from first up to the next span's first,
// and what the filter does for them: block, or else return ret.
type span struct {
	first uint32
	ret   uint32
	block []unix.SockFilter
}

// spans cuts the call numbers into spans decided alike, in order; the
// last reaches past every number the policy names.
func spans(p filterPolicy) []span {
	byArgs := map[uint32][]unix.SockFilter{
		unix.SYS_CLONE:       nsFlagsBlock(offArg(0)),
		unix.SYS_UNSHARE:     nsFlagsBlock(offArg(0)),
		unix.SYS_SOCKET:      socketBlock(),
		unix.SYS_PERSONALITY: personalityBlock(),
	}
	last := uint32(0)
	for nr := range byArgs {
		last = max(last, nr)
	}
	lists := []struct {
		nrs []uintptr
		ret uint32
	}{{p.allow, retAllow}, {p.refuse, retEPERM}, {p.enosys, retENOSYS}}
	for _, l := range lists {
		for _, nr := range l.nrs {
			last = max(last, uint32(nr))
		}
	}
	rets := make([]uint32, last+2)
	for i := range rets {
		rets[i] = retENOSYS
	}
	for _, l := range lists {
		for _, nr := range l.nrs {
			rets[nr] = l.ret
		}
	}
	out := make([]span, 0, 64)
	for nr, ret := range rets {
		if b, ok := byArgs[uint32(nr)]; ok {
			out = append(out, span{first: uint32(nr), block: b})
			continue
		}
		if n := len(out); n > 0 && out[n-1].block == nil && out[n-1].ret == ret {
			continue
		}
		out = append(out, span{first: uint32(nr), ret: ret})
	}
	return out
}

// searchSpans appends to prog a binary search over s for the call
// number in the accumulator, ending in the block of its span.
func searchSpans(prog []unix.SockFilter, s []span) []unix.SockFilter {
	if len(s) == 1 {
		if s[0].block != nil {
			return append(prog, s[0].block...)
		}
		return append(prog, unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: s[0].ret})
	}
	mid := len(s) / 2
	if below := searchLen(s[:mid]); below <= 0xff {
		prog = append(prog, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, K: s[mid].first, Jt: uint8(below)})
	} else {
		// A conditional jump reaches 255 instructions at most.
		prog = append(prog,
			unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, K: s[mid].first, Jf: 1},
			unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JA, K: uint32(below)})
	}
	prog = searchSpans(prog, s[:mid])
	return searchSpans(prog, s[mid:])
}

// searchLen is the length of searchSpans' program for s.
func searchLen(s []span) int {
	if len(s) == 1 {
		return max(len(s[0].block), 1)
	}
	mid := len(s) / 2
	n := searchLen(s[:mid])
	jump := 1
	if n > 0xff {
		jump = 2
	}
	return jump + n + searchLen(s[mid:])
}

// Offsets in struct seccomp_data: int nr; u32 arch; u64 ip; u64 args[6].
const (
	offNr   = 0
	offArch = 4
)

// offArg is the offset of the low 32 bits of argument i (both supported
// architectures are little-endian). Every argument tested here is an int,
// or flags whose high half the kernel ignores.
func offArg(i int) uint32 { return 16 + 8*uint32(i) }

// nsFlagsBlock allows the call unless the flags at off ask for a namespace.
func nsFlagsBlock(off uint32) []unix.SockFilter {
	return []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: off},
		{Code: unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K, K: nsFlagsMask, Jt: 0, Jf: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: retEPERM},
		{Code: unix.BPF_RET | unix.BPF_K, K: retAllow},
	}
}

// personalityBlock allows only PER_LINUX and the query 0xffffffff (the
// kernel reads the argument as an unsigned int): no ADDR_NO_RANDOMIZE,
// READ_IMPLIES_EXEC or other execution domains.
func personalityBlock() []unix.SockFilter {
	return []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: offArg(0)},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: perLinux, Jt: 2, Jf: 0},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: 0xffffffff, Jt: 1, Jf: 0},
		{Code: unix.BPF_RET | unix.BPF_K, K: retEPERM},
		{Code: unix.BPF_RET | unix.BPF_K, K: retAllow},
	}
}

// socketBlock allows the families programs use: Unix, IPv4, IPv6 and
// netlink (whose SOCK_RAW sockets C libraries and Go use to list
// addresses). Raw IP sockets, which a process with CAP_NET_RAW in any
// network namespace could use to forge traffic, are refused with EPERM.
// Every other family answers EAFNOSUPPORT, as a kernel without it would:
// AF_PACKET, and AF_VSOCK, which the network namespace does not confine
// (on a VM it reaches the hypervisor and the host), and the rarely used
// families whose modules a socket call would load (TIPC, RDS, …).
func socketBlock() []unix.SockFilter {
	return []unix.SockFilter{
		/* 0 */ {Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: offArg(0)},
		/* 1 */ {Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.AF_UNIX, Jt: 7, Jf: 0}, // -> 9
		/* 2 */ {Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.AF_NETLINK, Jt: 6, Jf: 0}, // -> 9
		/* 3 */ {Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.AF_INET, Jt: 1, Jf: 0}, // -> 5
		/* 4 */ {Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.AF_INET6, Jt: 0, Jf: 6}, // 5, 11
		/* 5 */ {Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: offArg(1)},
		/* 6 */ {Code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, K: sockTypeMask},
		/* 7 */ {Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.SOCK_RAW, Jt: 2, Jf: 0}, // -> 10
		/* 8 */ {Code: unix.BPF_JMP | unix.BPF_JA, K: 0},
		/* 9 */ {Code: unix.BPF_RET | unix.BPF_K, K: retAllow},
		/* 10 */ {Code: unix.BPF_RET | unix.BPF_K, K: retEPERM},
		/* 11 */ {Code: unix.BPF_RET | unix.BPF_K, K: retEAFNOSUPPORT},
	}
}

// sockTypeMask keeps the type of socket's second argument, without
// SOCK_NONBLOCK and SOCK_CLOEXEC.
const sockTypeMask = 0xf

// perLinux is PER_LINUX, the default execution domain.
const perLinux = 0
