package scheduler

import (
	"sync/atomic"
	"time"

	"github.com/mote-run/mote/internal/runtime"
)

// usage records what a pool's invocations used, for right-sizing: the CPU
// of every invocation, and the peak memory of its instances
// (runtime.PeakMemoryReporter), read after the pool's first 16
// invocations, every 16th after, after every failure (an out-of-memory
// one among them) and when an instance stops. A peak is cumulative, so a
// sample misses nothing an instance did before it. The figures live with
// the pool (one version), in memory: a restart starts them again.
type usage struct {
	peakMem atomic.Int64
	cpuSum  atomic.Int64 // ns
	cpuMax  atomic.Int64 // ns
	calls   atomic.Int64
}

// sampleEvery is how often (in invocations) a healthy instance's peak
// memory is read after its first ones: a cgroup file read for a process.
const sampleEvery = 16

func (u *usage) observe(inst runtime.Instance, use runtime.Usage, n uint64, failed bool) {
	cpu := int64(use.CPU)
	u.cpuSum.Add(cpu)
	u.calls.Add(1)
	storeMax(&u.cpuMax, cpu)
	if failed || n <= sampleEvery || n%sampleEvery == 0 {
		u.observeMemory(inst)
	}
}

func (u *usage) observeMemory(inst runtime.Instance) {
	if r, ok := inst.(runtime.PeakMemoryReporter); ok {
		storeMax(&u.peakMem, r.PeakMemory())
	}
}

func (u *usage) fill(st *Stats) {
	st.PeakMemory = u.peakMem.Load()
	st.MaxCPU = time.Duration(u.cpuMax.Load())
	if n := u.calls.Load(); n > 0 {
		st.MeanCPU = time.Duration(u.cpuSum.Load() / n)
	}
	st.RecommendedMemory = RecommendMemory(st.PeakMemory)
}

// storeMax raises a to v if v is larger.
func storeMax(a *atomic.Int64, v int64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

// RecommendMemory is the memory limit Mote recommends for a function
// whose instances peaked at peak bytes: a quarter above the peak, for
// what the observations missed, rounded up to 8 MiB, and at least
// 16 MiB; 0 when nothing was observed.
func RecommendMemory(peak int64) int64 {
	if peak <= 0 {
		return 0
	}
	const step = 8 << 20
	r := peak + peak/4
	r = (r + step - 1) / step * step
	return max(r, 16<<20)
}
