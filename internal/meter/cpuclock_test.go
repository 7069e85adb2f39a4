package meter

import (
	"runtime"
	"testing"
	"time"
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

func TestThreadCPUSpin(t *testing.T) {
	const spin = 20 * time.Millisecond
	got := measure(func() {
		for end := time.Now().Add(spin); time.Now().Before(end); {
		}
	})
	// The spin burns wall time; on a busy 2-core machine the thread may be
	// descheduled for part of it, so CPU can fall short of wall time but
	// never exceed it by more than clock noise.
	if got < spin/2 || got > spin+5*time.Millisecond {
		t.Errorf("20 ms spin: got %v of thread CPU, want about %v", got, spin)
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
