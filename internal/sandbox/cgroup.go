package sandbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Controller names as Mote uses them. CPU accounting is "cpuacct" in v1 and
// "cpu" (cpu.stat) in v2.
const (
	ctlMemory = "memory"
	ctlPids   = "pids"
	ctlCPU    = "cpu"
	// ctlFreezer is v1's freezer hierarchy; in v2 freezing is part of
	// every group (cgroup.freeze), so it goes where the v2 groups go.
	ctlFreezer = "freezer"
)

// place is where Mote creates groups for one controller: a directory in a
// v1 hierarchy or in the v2 unified hierarchy.
type place struct {
	v2  bool
	dir string // Mote's parent group for this controller
}

// hierarchy is the result of detecting cgroups: for each controller Mote
// uses, the place its groups go, or nothing when it is unavailable.
type hierarchy struct {
	ctl map[string]place
}

// mount is one cgroup mount from /proc/self/mountinfo.
type mount struct {
	v2          bool
	root, point string
	controllers []string // v1: from the super options; v2: cgroup.controllers
}

// detectHierarchy reads the mounted cgroup hierarchies and the process's
// own groups, and picks for each controller v2 where it is available there,
// else v1. The groups Mote creates go under a group named name inside the
// process's own group, so limits set on Mote apply to its functions too.
func detectHierarchy(name string) (hierarchy, []string) {
	h := hierarchy{ctl: map[string]place{}}
	var notes []string
	mounts, err := readMounts("/proc/self/mountinfo")
	if err != nil {
		return h, []string{"cgroups: " + err.Error()}
	}
	own, err := readOwnCgroups("/proc/self/cgroup")
	if err != nil {
		return h, []string{"cgroups: " + err.Error()}
	}
	dirOf := func(m mount, cgPath string) string {
		rel, err := filepath.Rel(m.root, cgPath)
		if err != nil || strings.HasPrefix(rel, "..") {
			rel = "."
		}
		return filepath.Join(m.point, rel)
	}
	// v2 first: a controller enabled in the unified hierarchy wins.
	for _, m := range mounts {
		if !m.v2 {
			continue
		}
		ownDir := dirOf(m, own[""])
		avail := map[string]bool{}
		for _, c := range m.controllers {
			avail[c] = true
		}
		var want []string
		for _, c := range []string{ctlMemory, ctlPids, ctlCPU} {
			if avail[c] {
				want = append(want, c)
			}
		}
		if len(want) == 0 {
			break
		}
		// A v2 group with processes cannot delegate controllers (the "no
		// internal processes" rule) unless it is the root; try, and fall
		// back to v1 for what fails.
		parent := filepath.Join(ownDir, name)
		if err := enableV2(ownDir, want); err != nil {
			notes = append(notes, fmt.Sprintf("cgroup v2: cannot enable %v under %s: %v", want, ownDir, err))
			break
		}
		for _, c := range want {
			h.ctl[c] = place{v2: true, dir: parent}
		}
		h.ctl[ctlFreezer] = place{v2: true, dir: parent}
		break
	}
	for _, m := range mounts {
		if m.v2 {
			continue
		}
		for _, c := range m.controllers {
			key := c
			if c == "cpuacct" {
				key = ctlCPU
			} else if c != ctlMemory && c != ctlPids && c != ctlFreezer {
				continue
			}
			if _, ok := h.ctl[key]; ok {
				continue
			}
			h.ctl[key] = place{dir: filepath.Join(dirOf(m, own[strings.Join(m.controllers, ",")]), name)}
		}
	}
	for _, c := range []string{ctlMemory, ctlPids, ctlCPU, ctlFreezer} {
		if _, ok := h.ctl[c]; !ok {
			notes = append(notes, "cgroups: no "+c+" controller available")
		}
	}
	return h, notes
}

// enableV2 turns controllers on in dir's subtree_control and in the Mote
// group below it.
func enableV2(dir string, ctls []string) error {
	var b strings.Builder
	for _, c := range ctls {
		b.WriteString("+" + c + " ")
	}
	return os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(strings.TrimSpace(b.String())), 0)
}

// v1Controllers are the names that can appear among a v1 mount's options
// (the other options are flags such as rw or xattr).
var v1Controllers = map[string]bool{
	"cpu": true, "cpuacct": true, "cpuset": true, "memory": true, "devices": true,
	"freezer": true, "net_cls": true, "blkio": true, "perf_event": true,
	"net_prio": true, "hugetlb": true, "pids": true, "rdma": true, "misc": true,
}

func readMounts(path string) ([]mount, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ms []mount
	for _, line := range strings.Split(string(data), "\n") {
		// id parent maj:min root point opts [optional...] - fstype source superopts
		fields := strings.Fields(line)
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+1 >= len(fields) {
			continue
		}
		fstype := fields[sep+1]
		switch fstype {
		case "cgroup":
			var ctls []string
			if sep+3 < len(fields) {
				for _, o := range strings.Split(fields[sep+3], ",") {
					if v1Controllers[o] {
						ctls = append(ctls, o)
					}
				}
			}
			ms = append(ms, mount{root: fields[3], point: fields[4], controllers: ctls})
		case "cgroup2":
			m := mount{v2: true, root: fields[3], point: fields[4]}
			if b, err := os.ReadFile(filepath.Join(m.point, "cgroup.controllers")); err == nil {
				m.controllers = strings.Fields(string(b))
			}
			ms = append(ms, m)
		}
	}
	return ms, nil
}

// readOwnCgroups maps each hierarchy's controller list ("" for v2, e.g.
// "memory" or "cpu,cpuacct" for v1) to this process's group path in it.
func readOwnCgroups(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	own := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 {
			own[parts[1]] = parts[2]
		}
	}
	return own, nil
}

// Cgroup is one instance's group: its directory in each hierarchy that has
// a controller Mote uses.
//
// Its methods may be called concurrently: an instance is closed (Remove)
// while an invocation may still be reading its CPU or killing it. mu
// guards dirs and cpuFile, which Remove clears; the places are fixed at
// creation.
type Cgroup struct {
	mem, pids, cpu place // dir is "" where the controller is missing

	mu         sync.RWMutex
	dirs       []string
	cpuFile    *os.File
	freeze     place
	freezeFile *os.File // freezer.state (v1) or cgroup.freeze (v2), open for writing
}

// newCgroup creates the group name under each controller's place and sets
// its limits. Missing controllers are skipped (detectHierarchy said so).
func (h hierarchy) newCgroup(name string, memLimit, pidsLimit int64) (*Cgroup, error) {
	cg := &Cgroup{}
	seen := map[string]bool{}
	mk := func(c string) (place, error) {
		p, ok := h.ctl[c]
		if !ok {
			return place{}, nil
		}
		p.dir = filepath.Join(p.dir, name)
		if !seen[p.dir] {
			if err := os.MkdirAll(p.dir, 0o755); err != nil {
				return place{}, fmt.Errorf("sandbox: create cgroup: %w", err)
			}
			seen[p.dir] = true
			cg.dirs = append(cg.dirs, p.dir)
		}
		return p, nil
	}
	var err error
	if cg.mem, err = mk(ctlMemory); err != nil {
		cg.Remove()
		return nil, err
	}
	if cg.pids, err = mk(ctlPids); err != nil {
		cg.Remove()
		return nil, err
	}
	if cg.cpu, err = mk(ctlCPU); err != nil {
		cg.Remove()
		return nil, err
	}
	if cg.freeze, err = mk(ctlFreezer); err != nil {
		cg.Remove()
		return nil, err
	}
	if err := cg.setLimits(memLimit, pidsLimit); err != nil {
		cg.Remove()
		return nil, err
	}
	if cg.freeze.dir != "" {
		file := "freezer.state"
		if cg.freeze.v2 {
			file = "cgroup.freeze"
		}
		if cg.freezeFile, err = os.OpenFile(filepath.Join(cg.freeze.dir, file), os.O_WRONLY, 0); err != nil {
			cg.Remove()
			return nil, fmt.Errorf("sandbox: open cgroup freezer: %w", err)
		}
	}
	if cg.cpu.dir != "" {
		file := "cpuacct.usage"
		if cg.cpu.v2 {
			file = "cpu.stat"
		}
		if cg.cpuFile, err = os.Open(filepath.Join(cg.cpu.dir, file)); err != nil {
			cg.Remove()
			return nil, fmt.Errorf("sandbox: open cgroup cpu usage: %w", err)
		}
	}
	return cg, nil
}

func (cg *Cgroup) setLimits(memLimit, pidsLimit int64) error {
	write := func(dir, file, val string) error {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(val), 0); err != nil {
			return fmt.Errorf("sandbox: set %s: %w", file, err)
		}
		return nil
	}
	if cg.mem.dir != "" && memLimit > 0 {
		v := strconv.FormatInt(memLimit, 10)
		if cg.mem.v2 {
			if err := write(cg.mem.dir, "memory.max", v); err != nil {
				return err
			}
			// No swap: a function over its limit is killed, not slowed.
			_ = write(cg.mem.dir, "memory.swap.max", "0")
		} else {
			if err := write(cg.mem.dir, "memory.limit_in_bytes", v); err != nil {
				return err
			}
			// memsw must be >= the memory limit; where swap accounting
			// exists, pin it to the same value so swap cannot extend it.
			if _, err := os.Stat(filepath.Join(cg.mem.dir, "memory.memsw.limit_in_bytes")); err == nil {
				_ = write(cg.mem.dir, "memory.memsw.limit_in_bytes", v)
			}
		}
	}
	if cg.pids.dir != "" && pidsLimit > 0 {
		if err := write(cg.pids.dir, "pids.max", strconv.FormatInt(pidsLimit, 10)); err != nil {
			return err
		}
	}
	return nil
}

// Enabled reports which controllers this group has: memory, pids, cpu.
func (cg *Cgroup) Enabled() (memory, pids, cpu bool) {
	return cg.mem.dir != "", cg.pids.dir != "", cg.cpu.dir != ""
}

// Add moves pid into the group in every hierarchy.
func (cg *Cgroup) Add(pid int) error {
	cg.mu.RLock()
	defer cg.mu.RUnlock()
	p := []byte(strconv.Itoa(pid))
	for _, d := range cg.dirs {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), p, 0); err != nil {
			return fmt.Errorf("sandbox: join cgroup %s: %w", d, err)
		}
	}
	return nil
}

// ErrNoAccounting is returned by CPU when no cgroup CPU accounting exists.
var ErrNoAccounting = errors.New("sandbox: no cgroup cpu accounting")

// CPU returns the group's cumulative CPU time (all its processes, user and
// system; blocked time is not counted by the kernel).
func (cg *Cgroup) CPU() (time.Duration, error) {
	cg.mu.RLock()
	if cg.cpuFile == nil {
		cg.mu.RUnlock()
		return 0, ErrNoAccounting
	}
	var buf [512]byte
	n, err := cg.cpuFile.ReadAt(buf[:], 0)
	cg.mu.RUnlock()
	if n == 0 && err != nil {
		return 0, fmt.Errorf("sandbox: read cpu usage: %w", err)
	}
	b := buf[:n]
	if !cg.cpu.v2 {
		ns, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("sandbox: parse cpuacct.usage: %w", err)
		}
		return time.Duration(ns), nil
	}
	us, ok := statField(b, "usage_usec")
	if !ok {
		return 0, fmt.Errorf("sandbox: cpu.stat has no usage_usec")
	}
	return time.Duration(us) * time.Microsecond, nil
}

// OOMKills returns how many processes the kernel's OOM killer has killed
// in this group.
func (cg *Cgroup) OOMKills() uint64 {
	if cg.mem.dir == "" {
		return 0
	}
	file, key := "memory.oom_control", "oom_kill"
	if cg.mem.v2 {
		file = "memory.events"
	}
	b, err := os.ReadFile(filepath.Join(cg.mem.dir, file))
	if err != nil {
		return 0
	}
	n, _ := statField(b, key)
	return uint64(n)
}

// MemoryUsage returns the group's current memory charge in bytes.
func (cg *Cgroup) MemoryUsage() int64 {
	if cg.mem.dir == "" {
		return 0
	}
	file := "memory.usage_in_bytes"
	if cg.mem.v2 {
		file = "memory.current"
	}
	b, err := os.ReadFile(filepath.Join(cg.mem.dir, file))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	return n
}

// MemoryPeak returns the most memory the group has been charged since it
// was made, in bytes (memory.peak in v2, memory.max_usage_in_bytes in v1;
// the current charge where the kernel has neither).
func (cg *Cgroup) MemoryPeak() int64 {
	if cg.mem.dir == "" {
		return 0
	}
	file := "memory.max_usage_in_bytes"
	if cg.mem.v2 {
		file = "memory.peak"
	}
	b, err := os.ReadFile(filepath.Join(cg.mem.dir, file))
	if err != nil {
		return cg.MemoryUsage()
	}
	n, _ := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	return n
}

// statField finds "key value" in a flat-keyed cgroup file.
func statField(b []byte, key string) (int64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// Procs lists the processes in the group (from the first hierarchy).
func (cg *Cgroup) Procs() []int {
	cg.mu.RLock()
	defer cg.mu.RUnlock()
	return cg.procs()
}

// procs is Procs for a caller holding mu.
func (cg *Cgroup) procs() []int {
	if len(cg.dirs) == 0 {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(cg.dirs[0], "cgroup.procs"))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

// ErrNoFreezer is returned by Freeze and Thaw without a cgroup freezer.
var ErrNoFreezer = errors.New("sandbox: no cgroup freezer")

// Freeze stops every process of the group where it is, as AWS Lambda
// freezes an execution environment between invocations: nothing in it
// runs (or costs CPU) until Thaw. The kernel may take a moment to reach
// every thread; Freeze does not wait for it.
func (cg *Cgroup) Freeze() error { return cg.setFrozen(true) }

// Thaw lets the group's processes run again.
func (cg *Cgroup) Thaw() error { return cg.setFrozen(false) }

func (cg *Cgroup) setFrozen(frozen bool) error {
	cg.mu.RLock()
	defer cg.mu.RUnlock()
	if cg.freezeFile == nil {
		return ErrNoFreezer
	}
	var v string
	switch {
	case cg.freeze.v2 && frozen:
		v = "1"
	case cg.freeze.v2:
		v = "0"
	case frozen:
		v = "FROZEN"
	default:
		v = "THAWED"
	}
	if _, err := cg.freezeFile.WriteString(v); err != nil {
		return fmt.Errorf("sandbox: freezer: %w", err)
	}
	return nil
}

// Kill sends SIGKILL to every process in the group until it is empty (a
// fork bomb is bounded by pids.max, so this ends). It uses cgroup.kill
// where the kernel has it. A frozen group is thawed first: a frozen
// process does not die.
func (cg *Cgroup) Kill() {
	_ = cg.Thaw()
	cg.mu.RLock()
	defer cg.mu.RUnlock()
	for _, d := range cg.dirs {
		if os.WriteFile(filepath.Join(d, "cgroup.kill"), []byte("1"), 0) == nil {
			return
		}
	}
	for i := 0; i < 100; i++ {
		pids := cg.procs()
		if len(pids) == 0 {
			return
		}
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(time.Millisecond)
	}
}

// Remove deletes the group's directories. Call it once its processes are
// gone; it retries briefly while the kernel finishes tearing them down.
func (cg *Cgroup) Remove() error {
	cg.mu.Lock()
	defer cg.mu.Unlock()
	if cg.cpuFile != nil {
		cg.cpuFile.Close()
		cg.cpuFile = nil
	}
	if cg.freezeFile != nil {
		cg.freezeFile.Close()
		cg.freezeFile = nil
	}
	var first error
	for _, d := range cg.dirs {
		var err error
		for i := 0; i < 200; i++ {
			if err = syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
				err = nil
				break
			}
			time.Sleep(time.Millisecond)
		}
		if err != nil && first == nil {
			first = fmt.Errorf("sandbox: remove cgroup %s: %w", d, err)
		}
	}
	cg.dirs = nil
	return first
}
