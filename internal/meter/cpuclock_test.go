package meter

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestBilledMs(t *testing.T) {
	tests := []struct {
		cpu  time.Duration
		want int64
	}{
		{0, 1},
		{-time.Millisecond, 1},
		{time.Nanosecond, 1},
		{999 * time.Microsecond, 1},
		{time.Millisecond, 1},
		{time.Millisecond + time.Nanosecond, 2},
		{20 * time.Millisecond, 20},
		{20*time.Millisecond + 100*time.Microsecond, 21},
		{time.Hour, 3_600_000},
	}
	for _, tt := range tests {
		if got := BilledMs(tt.cpu); got != tt.want {
			t.Errorf("BilledMs(%v) = %d, want %d", tt.cpu, got, tt.want)
		}
	}
}

// measure runs f on a locked thread and returns the thread CPU it used.
func measure(f func()) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := ThreadCPU()
	f()
	return ThreadCPU() - start
}

// TestThreadCPUSpin checks the thread clock against the kernel's own
// tick-grained account of the same thread (RUSAGE_THREAD) over ~60 ms of
// spinning. Both count only the CPU the thread got, so they agree however
// busy the machine is (a wall-clock spin on a loaded 2-vCPU machine may
// get far less CPU than its wall time), and neither may exceed wall time.
func TestThreadCPUSpin(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var ru0, ru1 unix.Rusage
	unix.Getrusage(unix.RUSAGE_THREAD, &ru0)
	wall0, cpu0 := time.Now(), ThreadCPU()
	for end := time.Now().Add(60 * time.Millisecond); time.Now().Before(end); {
	}
	cpu, wall := ThreadCPU()-cpu0, time.Since(wall0)
	unix.Getrusage(unix.RUSAGE_THREAD, &ru1)
	tick := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond
	if cpu <= 0 || cpu > wall+time.Millisecond {
		t.Errorf("60 ms spin: thread CPU %v, wall %v: CPU must be positive and at most wall time", cpu, wall)
	}
	// RUSAGE_THREAD advances in scheduler ticks (up to 10 ms here).
	if d := cpu - tick; d < -12*time.Millisecond || d > 12*time.Millisecond {
		t.Errorf("60 ms spin: thread clock %v, kernel's tick account %v: they should agree within a tick", cpu, tick)
	}
}

func TestThreadCPUSleep(t *testing.T) {
	got := measure(func() { time.Sleep(100 * time.Millisecond) })
	if got >= 5*time.Millisecond {
		t.Errorf("100 ms sleep: got %v of thread CPU, want < 5ms", got)
	}
}

func TestThreadCPUMonotonic(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	prev := ThreadCPU()
	if prev <= 0 {
		t.Fatalf("ThreadCPU() = %v, want > 0 on a thread that has run", prev)
	}
	for i := 0; i < 1000; i++ {
		now := ThreadCPU()
		if now < prev {
			t.Fatalf("ThreadCPU went back from %v to %v", prev, now)
		}
		prev = now
	}
}

func BenchmarkThreadCPU(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for b.Loop() {
		ThreadCPU()
	}
}
