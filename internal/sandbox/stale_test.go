package sandbox

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// deadPid returns the pid of a process that has exited.
func deadPid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// TestRemovesWhatADeadMoteLeft: the cgroups (with a process still in
// one) and the root mount point of a Mote killed with -9 are gone once a
// new sandbox starts (issue 10, finding 8: they were never cleaned up).
func TestRemovesWhatADeadMoteLeft(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	probe := newSandbox(t)
	place, ok := probe.h.ctl[ctlPids]
	if !ok {
		t.Skip("no pids cgroup")
	}
	dead := strconv.Itoa(deadPid(t))
	stale := filepath.Join(filepath.Dir(place.dir), "mote-"+dead)
	group := filepath.Join(stale, "i1-abcd")
	if err := os.MkdirAll(group, 0o755); err != nil {
		t.Fatal(err)
	}
	left := exec.Command("sleep", "60")
	if err := left.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { left.Wait(); close(exited) }()
	if err := os.WriteFile(filepath.Join(group, "cgroup.procs"), []byte(strconv.Itoa(left.Process.Pid)), 0); err != nil {
		left.Process.Kill()
		t.Fatal(err)
	}
	mnt := filepath.Join(os.TempDir(), stalePrefix+dead)
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	// A live process's group is left alone (our parent is alive).
	live := filepath.Join(filepath.Dir(place.dir), "mote-"+strconv.Itoa(os.Getppid()))
	if err := os.Mkdir(live, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(live)
	removeStale(slog.New(slog.DiscardHandler), probe.h)
	<-exited
	for _, p := range []string{stale, mnt} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s is still there", p)
		}
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("a live process's group was removed: %v", err)
	}
}
