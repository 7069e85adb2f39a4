package sandbox

import (
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stalePrefix names what a Mote process leaves in os.TempDir() and in
// cgroup trees: "mote-sandbox-PID" and "mote-PID" (Config.Group's
// default).
const stalePrefix = "mote-sandbox-"

// removeStale removes what sandboxes of Mote processes that died without
// closing (kill -9, a crash) left behind: their cgroups, next to this
// process's own, with anything still in them killed; and their root mount
// points in os.TempDir(). A name whose process is alive is left alone.
func removeStale(log *slog.Logger, h hierarchy) {
	seen := map[string]bool{}
	for _, p := range h.ctl {
		parent := filepath.Dir(p.dir)
		if seen[parent] {
			continue
		}
		seen[parent] = true
		for _, dir := range staleEntries(parent, "mote-") {
			n := removeCgroupTree(dir)
			log.Info("sandbox: removed cgroups of a dead Mote", "dir", dir, "killed", n)
		}
	}
	RemoveStaleDirs(log, os.TempDir(), stalePrefix)
}

// RemoveStaleDirs removes the directories in dir named prefix+PID whose
// process no longer exists, with what is in them.
func RemoveStaleDirs(log *slog.Logger, dir, prefix string) {
	for _, d := range staleEntries(dir, prefix) {
		if err := os.RemoveAll(d); err != nil {
			log.Warn("sandbox: cannot remove a dead Mote's directory", "dir", d, "err", err)
			continue
		}
		log.Info("sandbox: removed a dead Mote's directory", "dir", d)
	}
}

// staleEntries lists the directories in dir named prefix+PID for a PID
// that is not a live process.
func staleEntries(dir, prefix string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || !e.IsDir() {
			continue
		}
		pid, err := strconv.Atoi(rest)
		if err != nil || pid <= 0 || pid == os.Getpid() || alive(pid) {
			continue
		}
		out = append(out, filepath.Join(dir, e.Name()))
	}
	return out
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}

// removeCgroupTree thaws, empties and removes a cgroup directory and the
// groups below it, deepest first, and returns how many processes it
// killed.
func removeCgroupTree(dir string) int {
	killed := 0
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() {
			killed += removeCgroupTree(filepath.Join(dir, e.Name()))
		}
	}
	// A frozen process cannot die: thaw first (v1 freezer, v2 core).
	_ = os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("THAWED"), 0)
	_ = os.WriteFile(filepath.Join(dir, "cgroup.freeze"), []byte("0"), 0)
	for i := 0; i < 200; i++ {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		pids := strings.Fields(string(b))
		if err != nil || len(pids) == 0 {
			break
		}
		for _, f := range pids {
			if pid, err := strconv.Atoi(f); err == nil {
				if syscall.Kill(pid, syscall.SIGKILL) == nil && i == 0 {
					killed++
				}
			}
		}
		time.Sleep(time.Millisecond)
	}
	for i := 0; i < 200; i++ {
		if err := syscall.Rmdir(dir); err == nil || err == syscall.ENOENT {
			break
		}
		time.Sleep(time.Millisecond)
	}
	return killed
}
