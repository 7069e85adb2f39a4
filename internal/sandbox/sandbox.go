// Package sandbox runs a command as a user of its own (one uid per live
// process, from a reserved range) in its own cgroup (memory and pids
// limits, CPU accounting, freezer), in new PID, mount, IPC, UTS, network
// and cgroup namespaces, and in a read-only root of its own with a
// private /tmp (see root.go); and meters its CPU time from the kernel.
//
// A process is started in two steps because cgroup v1 cannot clone a
// child straight into a group: Start re-executes Mote's own binary as a
// tiny init (see MaybeRunInit) that blocks on a pipe while Mote moves it
// into its cgroup and opens the listening socket inside its network
// namespace (Proc.Listen); Proc.Exec then hands the init the command to
// run. The init stays as PID 1 of the new PID namespace: it starts the
// command as the unprivileged user, reaps every orphan, and when the
// command exits it ends, which makes the kernel kill whatever is left in
// the namespace. Where the kernel refuses a namespace or a controller,
// New logs it once and the sandbox runs with what works.
package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// nsFlags are the namespaces every sandboxed process gets where the kernel
// allows them.
var nsFlags = []struct {
	flag uintptr
	name string
}{
	{unix.CLONE_NEWPID, "pid"},
	{unix.CLONE_NEWNS, "mount"},
	{unix.CLONE_NEWIPC, "ipc"},
	{unix.CLONE_NEWUTS, "uts"},
	{unix.CLONE_NEWNET, "net"},
	{unix.CLONE_NEWCGROUP, "cgroup"},
}

// RuntimeAPIAddr is where a process in its own network namespace finds
// the socket Proc.Listen opened for it (the port AWS Lambda uses).
const RuntimeAPIAddr = "127.0.0.1:9001"

// Config configures a Sandbox. The zero value gets defaults from New.
type Config struct {
	Logger *slog.Logger
	// UIDBase and UIDCount reserve the range of user (and group) ids that
	// sandboxed processes run as: each live process gets one of its own,
	// so no two can signal, trace or read each other's files. Defaults:
	// DefaultUIDBase and DefaultUIDCount. Mote never runs function code as
	// root.
	UIDBase, UIDCount int
	// RootDir is an empty directory on which each process's own root is
	// built (in its own mount namespace, so all can share it). Default:
	// a directory "mote-sandbox-PID" in os.TempDir(), made at New and
	// removed by Close.
	RootDir string
	// InitPath is the executable re-executed as the sandbox init; it must
	// call MaybeRunInit first thing in main (or TestMain). Default: this
	// process's own executable.
	InitPath string
	// Group names Mote's parent cgroup, created inside this process's own
	// group in each hierarchy. Default "mote-PID".
	Group string
	// EgressPool is the IPv4 range networked functions' links take their
	// /30s from, one per networked instance; every Mote on a host should
	// use the same one. Default DefaultEgressPool.
	EgressPool netip.Prefix
	// EgressDeny lists IPv4 destinations networked functions must not
	// reach, on top of 169.254.0.0/16 (link-local, cloud metadata), which
	// is always denied.
	EgressDeny []netip.Prefix
	// EgressWarm is how many network namespaces with their link out are
	// kept ready once a networked function has started, so that the next
	// ones start without waiting for the kernel to make them. 0 means 2;
	// negative, none.
	EgressWarm int
}

// Validate applies defaults and checks c.
func (c *Config) Validate() error {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.UIDBase == 0 {
		c.UIDBase = DefaultUIDBase
	}
	if c.UIDCount == 0 {
		c.UIDCount = DefaultUIDCount
	}
	if c.UIDBase < 1000 || c.UIDCount < 1 || int64(c.UIDBase)+int64(c.UIDCount) > 1<<31-1 {
		return fmt.Errorf("sandbox: uid range %d+%d must lie within 1000..2^31-1", c.UIDBase, c.UIDCount)
	}
	if c.InitPath == "" {
		p, err := os.Executable()
		if err != nil {
			return fmt.Errorf("sandbox: find own executable for init: %w", err)
		}
		c.InitPath = p
	}
	if fi, err := os.Stat(c.InitPath); err != nil || fi.IsDir() {
		return fmt.Errorf("sandbox: init executable %q is not a file", c.InitPath)
	}
	if c.Group == "" {
		c.Group = "mote-" + strconv.Itoa(os.Getpid())
	}
	if strings.ContainsAny(c.Group, "/.") {
		return fmt.Errorf("sandbox: group name %q must not contain / or .", c.Group)
	}
	return c.validateEgress()
}

// Default range of user ids of sandboxed processes: high enough to meet
// no account or subordinate-id range a distribution hands out.
const (
	DefaultUIDBase  = 2_000_000_000
	DefaultUIDCount = 65536
)

// Sandbox starts sandboxed processes. It is safe for concurrent use.
type Sandbox struct {
	cfg   Config
	log   *slog.Logger
	h     hierarchy
	flags uintptr
	uids  *uidPool
	root  string // mount point for each process's own root; "" without one
	owned bool   // root was made by New, and is removed by Close
	eg    *egress
}

// New detects the cgroup controllers and namespaces this kernel grants,
// logs once what it refuses, and makes this process a child subreaper so
// that no process a function leaves behind stays a zombie.
func New(cfg Config) (*Sandbox, error) {
	selfInit := cfg.InitPath == ""
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if selfInit && !initHooked.Load() {
		// The init is this very program re-executed (the default).
		return nil, ErrNoInitHook
	}
	if os.Getenv(envInit) != "" {
		// We are a sandbox's init that did not stop at MaybeRunInit.
		return nil, ErrNoInitHook
	}
	s := &Sandbox{cfg: cfg, log: cfg.Logger, uids: newUIDPool(cfg.UIDBase, cfg.UIDCount), eg: newEgress(cfg)}
	if os.Geteuid() != 0 {
		s.log.Warn("sandbox: not running as root: no cgroups, namespaces or user switch; functions run as this user")
	} else {
		var notes []string
		s.h, notes = detectHierarchy(cfg.Group)
		for _, n := range notes {
			s.log.Warn("sandbox: " + n)
		}
		removeStale(s.log, s.h)
		s.flags = s.probeNamespaces()
		if s.flags&unix.CLONE_NEWNET != 0 {
			s.eg.removeStale()
		}
		if s.flags&unix.CLONE_NEWNS != 0 {
			if err := s.makeRootDir(); err != nil {
				return nil, err
			}
		} else {
			s.log.Warn("sandbox: no mount namespace: functions see the host's files (read-only code directory only)")
		}
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		s.log.Warn("sandbox: cannot become child subreaper", "err", err)
	}
	s.log.Debug("sandbox ready", "namespaces", s.Namespaces(), "cgroups", s.Controllers())
	return s, nil
}

// probeNamespaces starts the init in probe mode with all namespaces, and
// one by one where that fails, and returns the flags that work.
func (s *Sandbox) probeNamespaces() uintptr {
	var all uintptr
	for _, n := range nsFlags {
		all |= n.flag
	}
	if s.probe(all) == nil {
		return all
	}
	var ok uintptr
	for _, n := range nsFlags {
		if err := s.probe(n.flag); err != nil {
			s.log.Warn("sandbox: kernel refuses namespace; functions run without it", "namespace", n.name, "err", err)
			continue
		}
		ok |= n.flag
	}
	return ok
}

func (s *Sandbox) probe(flags uintptr) error {
	cmd := exec.Command(s.cfg.InitPath)
	cmd.Args = []string{"mote-init"}
	cmd.Env = []string{envInit + "=" + modeProbe}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flags}
	return cmd.Run()
}

// Confined reports whether processes get the whole sandbox: a root of
// their own, a user of their own, and their own PID and network
// namespaces. Without it (Mote not root, or a kernel refusing those
// namespaces) a process runs with the host's files, and as Mote's own
// user when Mote is not root.
func (s *Sandbox) Confined() bool {
	const need = unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWNET
	return s.root != "" && s.flags&need == need && os.Geteuid() == 0
}

// Namespaces names the namespaces sandboxed processes get.
func (s *Sandbox) Namespaces() []string {
	var names []string
	for _, n := range nsFlags {
		if s.flags&n.flag != 0 {
			names = append(names, n.name)
		}
	}
	return names
}

// Controllers maps each cgroup controller Mote uses (memory, pids, cpu) to
// "v1" or "v2"; a missing one is not available.
func (s *Sandbox) Controllers() map[string]string {
	m := map[string]string{}
	for c, p := range s.h.ctl {
		m[c] = "v1"
		if p.v2 {
			m[c] = "v2"
		}
	}
	return m
}

// makeRootDir makes the mount point of processes' own roots.
func (s *Sandbox) makeRootDir() error {
	s.root = s.cfg.RootDir
	if s.root == "" {
		s.root = filepath.Join(os.TempDir(), stalePrefix+strconv.Itoa(os.Getpid()))
		s.owned = true
	}
	if err := os.Mkdir(s.root, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("sandbox: root mount point: %w", err)
	}
	// A predictable name in a shared directory: refuse one that someone
	// else made first (a link, or a directory that is not root's).
	fi, err := os.Lstat(s.root)
	if err != nil {
		return fmt.Errorf("sandbox: root mount point: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !fi.IsDir() || !ok || st.Uid != 0 || fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("sandbox: root mount point %s is not a directory of root's that only root may change", s.root)
	}
	return nil
}

// Close removes Mote's parent cgroups and its egress table (cutting the
// links of networked processes still running). Every Proc must be closed
// first.
func (s *Sandbox) Close() error {
	first := s.eg.close()
	if s.owned {
		_ = os.Remove(s.root)
	}
	seen := map[string]bool{}
	for _, p := range s.h.ctl {
		if seen[p.dir] {
			continue
		}
		seen[p.dir] = true
		if err := syscall.Rmdir(p.dir); err != nil && !errors.Is(err, syscall.ENOENT) && first == nil {
			first = fmt.Errorf("sandbox: remove cgroup %s: %w", p.dir, err)
		}
	}
	return first
}

// Options describes one sandboxed process.
type Options struct {
	// Name is the process's cgroup name, unique among live processes.
	Name        string
	MemoryLimit int64 // bytes; 0: no limit
	PidsLimit   int64 // processes and threads; 0: no limit
	// Network gives the process's own network namespace a link out (see
	// egress.go): it reaches the outside world through the host's NAT,
	// never the host itself or another function.
	Network bool
	// Stdout and Stderr receive the command's output (write ends of pipes,
	// usually). Nil discards it.
	Stdout, Stderr *os.File
	// Files are open to the command as file descriptors 3, 4, … in order
	// (a shared memory region, say). The caller keeps and closes its
	// copies.
	Files []*os.File
	// ReadOnly are host paths the process sees read-only at the same path
	// in its own root (SDKs, say); the directory passed to Exec always is.
	ReadOnly []string
	// TmpSize bounds the process's private /tmp and /dev/shm, each; its
	// pages count against MemoryLimit. 0: MemoryLimit, or DefaultTmpSize
	// without one.
	TmpSize int64
}

// DefaultTmpSize bounds /tmp of a process without a memory limit.
const DefaultTmpSize = 512 << 20

// Proc is a sandboxed process: first its init, blocked until Exec.
type Proc struct {
	s     *Sandbox
	cmd   *exec.Cmd
	sync  *os.File // write end of the init's config pipe; nil after Exec
	cg    *Cgroup  // nil without cgroups
	flags uintptr
	files int // Options.Files, passed on by the init
	uid   int // its own user and group id; 0 when not dropping privileges
	ro    []string
	tmp   int64
	done  chan struct{}
	state *os.ProcessState

	egress *egressLink // its link out with Options.Network, else nil
}

// Start starts the init of a new sandboxed process, in its cgroup and
// namespaces, blocked until Exec.
func (s *Sandbox) Start(o Options) (*Proc, error) {
	if o.Name == "" || strings.ContainsAny(o.Name, "/.") {
		return nil, fmt.Errorf("sandbox: bad process name %q", o.Name)
	}
	p := &Proc{s: s, flags: s.flags, done: make(chan struct{}), ro: o.ReadOnly, tmp: o.TmpSize}
	if p.tmp <= 0 {
		p.tmp = o.MemoryLimit
	}
	if p.tmp <= 0 {
		p.tmp = DefaultTmpSize
	}
	if o.Network && p.flags&unix.CLONE_NEWNET != 0 {
		// It starts in a namespace made ready with its link out.
		var err error
		if p.egress, err = s.getEgress(); err != nil {
			return nil, err
		}
		p.flags &^= unix.CLONE_NEWNET
	}
	if os.Geteuid() == 0 {
		uid, err := s.uids.get()
		if err != nil {
			p.removeCgroup()
			return nil, err
		}
		p.uid = uid
	}
	if len(s.h.ctl) > 0 {
		cg, err := s.h.newCgroup(o.Name, o.MemoryLimit, o.PidsLimit)
		if err != nil {
			p.removeCgroup()
			s.uids.put(p.uid)
			return nil, err
		}
		p.cg = cg
	}
	r, w, err := os.Pipe()
	if err != nil {
		p.removeCgroup()
		s.uids.put(p.uid)
		return nil, fmt.Errorf("sandbox: pipe: %w", err)
	}
	p.sync = w
	p.cmd = exec.Command(s.cfg.InitPath)
	p.cmd.Args = []string{"mote-init"}
	p.cmd.Env = []string{envInit + "=" + modeRun}
	p.cmd.Stdout, p.cmd.Stderr = o.Stdout, o.Stderr
	// The init reads its config from fd 3 and passes fds 4… on to the
	// command as 3….
	p.cmd.ExtraFiles = append([]*os.File{r}, o.Files...)
	p.files = len(o.Files)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{
		// The init enters a cgroup namespace itself, once it is in its
		// own cgroup (see runInit).
		Cloneflags: p.flags &^ unix.CLONE_NEWCGROUP,
		Setpgid:    true,
		// If Mote dies, so do its functions (and with them their PID
		// namespaces).
		Pdeathsig: syscall.SIGKILL,
	}
	err = p.startCmd()
	r.Close()
	if err != nil {
		w.Close()
		p.removeCgroup()
		s.uids.put(p.uid)
		return nil, fmt.Errorf("sandbox: start init: %w", err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.state = p.cmd.ProcessState
		close(p.done)
	}()
	if p.cg != nil {
		if err := p.cg.Add(p.cmd.Process.Pid); err != nil {
			p.Close()
			return nil, err
		}
	}
	return p, nil
}

// UID is the user and group id the process runs as (0 when Mote is not
// root and runs it as itself).
func (p *Proc) UID() int { return p.uid }

// OwnRoot reports whether the process runs in a root of its own (see
// buildRoot), where /tmp is private and host paths are not visible.
func (p *Proc) OwnRoot() bool { return p.s.root != "" && p.flags&unix.CLONE_NEWNS != 0 }

// Pid is the init's process id in Mote's PID namespace.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Cgroup returns the process's cgroup, or nil when cgroups are unavailable.
func (p *Proc) Cgroup() *Cgroup { return p.cg }

// NewNetwork reports whether the process has its own network namespace.
func (p *Proc) NewNetwork() bool { return p.flags&unix.CLONE_NEWNET != 0 || p.egress != nil }

// Listen opens a TCP listener the process can reach: in its own network
// namespace at RuntimeAPIAddr (with loopback brought up), or on a free
// loopback port of the host when it shares the host's network. Call it
// before Exec.
func (p *Proc) Listen() (net.Listener, error) {
	if !p.NewNetwork() {
		return net.Listen("tcp", "127.0.0.1:0")
	}
	return listenInNetns(p.Pid(), RuntimeAPIAddr)
}

// Exec tells the init to start argv as the unprivileged user in dir, with
// env. It returns once the init has the command; a command that cannot
// start makes the init exit (see Done) with the reason on its stderr.
func (p *Proc) Exec(argv, env []string, dir string) error {
	if p.sync == nil {
		return errors.New("sandbox: Exec called twice")
	}
	if len(argv) == 0 {
		return errors.New("sandbox: empty command")
	}
	cfg := initConfig{
		Argv: argv, Env: env, Dir: dir, UID: p.uid, GID: p.uid,
		NewMount:  p.flags&unix.CLONE_NEWNS != 0,
		NewPID:    p.flags&unix.CLONE_NEWPID != 0,
		NewUTS:    p.flags&unix.CLONE_NEWUTS != 0,
		NewCgroup: p.flags&unix.CLONE_NEWCGROUP != 0,
		DropUser:  p.uid != 0,
		Files:     p.files,
	}
	if p.OwnRoot() {
		cfg.Root = p.s.root
		cfg.ReadOnly = append([]string{dir}, p.ro...)
		cfg.TmpSize = p.tmp
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	_, err = p.sync.Write(b)
	p.sync.Close()
	p.sync = nil
	if err != nil {
		return fmt.Errorf("sandbox: hand command to init: %w", err)
	}
	return nil
}

// Done is closed when the init has exited (and with it, everything in the
// sandbox).
func (p *Proc) Done() <-chan struct{} { return p.done }

// ExitStatus describes how the init exited ("exit status 1", "signal:
// killed"); call it after Done.
func (p *Proc) ExitStatus() string {
	if p.state == nil {
		return "running"
	}
	return p.state.String()
}

// CPU returns the cumulative CPU time of the whole process tree: from the
// cgroup where there is one, else from /proc (tick-grained).
func (p *Proc) CPU() (time.Duration, error) {
	if p.cg != nil {
		if d, err := p.cg.CPU(); err != ErrNoAccounting {
			return d, err
		}
	}
	return procTreeCPU(p.Pid())
}

// OOMKills counts processes of this sandbox killed by the OOM killer.
func (p *Proc) OOMKills() uint64 {
	if p.cg == nil {
		return 0
	}
	return p.cg.OOMKills()
}

// Memory returns the sandbox's memory charge in bytes (0 without a memory
// cgroup).
func (p *Proc) Memory() int64 {
	if p.cg == nil {
		return 0
	}
	return p.cg.MemoryUsage()
}

// MemoryPeak returns the most memory the sandbox has been charged since
// it started, in bytes (0 without a memory cgroup).
func (p *Proc) MemoryPeak() int64 {
	if p.cg == nil {
		return 0
	}
	return p.cg.MemoryPeak()
}

// Freeze stops every process of the sandbox until Thaw (see
// Cgroup.Freeze); ErrNoFreezer without a cgroup freezer.
func (p *Proc) Freeze() error {
	if p.cg == nil {
		return ErrNoFreezer
	}
	return p.cg.Freeze()
}

// Thaw undoes Freeze.
func (p *Proc) Thaw() error {
	if p.cg == nil {
		return ErrNoFreezer
	}
	return p.cg.Thaw()
}

// Kill kills the whole process tree at once: the init (which, as PID 1 of
// its namespace, takes every process in it along) and anything in the
// cgroup.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	if p.cg != nil {
		p.cg.Kill()
	}
}

// Close kills the process tree, waits for the init, reaps any process
// that was reparented to Mote, and removes the cgroup.
func (p *Proc) Close() error {
	if p.sync != nil {
		p.sync.Close()
		p.sync = nil
	}
	var members []int
	if p.cg != nil {
		members = p.cg.Procs()
	}
	p.Kill()
	<-p.done
	reapAdopted(members)
	err := p.removeCgroup()
	if p.uid != 0 && err == nil {
		// Nothing runs as the uid any more (the cgroup was emptied), and
		// nothing it wrote outlives it (its /tmp was a tmpfs of its own).
		// Where the group could not be emptied, the uid stays taken.
		p.s.uids.put(p.uid)
		p.uid = 0
	}
	return err
}

// removeCgroup removes the cgroup and lets the network namespace and its
// link out go.
func (p *Proc) removeCgroup() error {
	if p.egress != nil {
		_ = p.egress.Close()
		p.egress = nil
	}
	if p.cg == nil {
		return nil
	}
	p.cg.Kill()
	return p.cg.Remove()
}

// reapAdopted reaps those of pids that became zombie children of Mote (as
// a subreaper it adopts orphans whose own reaper died first). Only pids
// that were in a sandbox are touched, so other children's exit statuses
// are left to whoever waits for them.
func reapAdopted(pids []int) {
	self := os.Getpid()
	for _, pid := range pids {
		st, err := readStat(pid)
		if err != nil || st.ppid != self {
			continue
		}
		for i := 0; i < 100; i++ {
			var ws unix.WaitStatus
			if n, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); n != 0 || err != nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// stat holds the fields of /proc/PID/stat Mote reads.
type stat struct {
	state          byte
	ppid           int
	utime, stime   int64 // clock ticks
	cutime, cstime int64
}

func readStat(pid int) (stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, err
	}
	// The command name is in parentheses and may contain spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return stat{}, errors.New("sandbox: malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return stat{}, errors.New("sandbox: short stat")
	}
	var st stat
	st.state = f[0][0]
	st.ppid, _ = strconv.Atoi(f[1])
	st.utime, _ = strconv.ParseInt(f[11], 10, 64)
	st.stime, _ = strconv.ParseInt(f[12], 10, 64)
	st.cutime, _ = strconv.ParseInt(f[13], 10, 64)
	st.cstime, _ = strconv.ParseInt(f[14], 10, 64)
	return st, nil
}

// clockTick is USER_HZ, 100 on every Linux Mote supports.
const clockTick = 10 * time.Millisecond

// procTreeCPU sums user and system time of root and its descendants
// (including reaped children's, via cutime/cstime), from /proc.
func procTreeCPU(root int) (time.Duration, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	stats := map[int]stat{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil {
			stats[pid] = st
		}
	}
	in := func(pid int) bool {
		for i := 0; i < 64 && pid > 1; i++ {
			if pid == root {
				return true
			}
			pid = stats[pid].ppid
		}
		return pid == root
	}
	var ticks int64
	for pid, st := range stats {
		if in(pid) {
			ticks += st.utime + st.stime + st.cutime + st.cstime
		}
	}
	return time.Duration(ticks) * clockTick, nil
}
