package scheduler

import (
	"math"
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
	wallSum atomic.Int64 // ns
	calls   atomic.Int64

	// The arrival model, updated by the reaper (under Pool.mu): the
	// arrival rate (an average over reaps), and the calls and wall time
	// seen at the last reap.
	rate              float64 // arrivals per second
	lastCalls, lastAt int64   // calls and time (ns) at the last reap
	lastWall          int64
	meanWall          float64 // seconds per invocation, over the last interval with calls
	predicted         int     // instances the model keeps live
}

// sampleEvery is how often (in invocations) a healthy instance's peak
// memory is read after its first ones: a cgroup file read for a process.
const sampleEvery = 16

func (u *usage) observe(inst runtime.Instance, use runtime.Usage, n uint64, failed bool) {
	cpu := int64(use.CPU)
	u.cpuSum.Add(cpu)
	u.wallSum.Add(int64(use.Wall))
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

// predict updates the arrival model at now and returns how many
// instances should be live so that the next arrival finds one idle: by
// Little's law the mean number of invocations in flight is L = arrival
// rate × mean duration; the pool keeps L + 2√L (a Poisson arrival
// stream rarely exceeds it). Below L = 1 it keeps none: a single new
// instance is the spare's or the snapshot's job. Called by the reaper
// with Pool.mu held.
func (u *usage) predict(now time.Time) int {
	calls, wall, at := u.calls.Load(), u.wallSum.Load(), now.UnixNano()
	if u.lastAt == 0 {
		u.lastCalls, u.lastWall, u.lastAt = calls, wall, at
		return 0
	}
	dt := float64(at-u.lastAt) / 1e9
	if dt <= 0 {
		return u.predicted
	}
	n := calls - u.lastCalls
	if n > 0 {
		u.meanWall = float64(wall-u.lastWall) / 1e9 / float64(n)
	}
	const keep = 0.5 // weight of the past: the rate halves each idle reap
	u.rate = keep*u.rate + (1-keep)*float64(n)/dt
	u.lastCalls, u.lastWall, u.lastAt = calls, wall, at
	l := u.rate * u.meanWall
	u.predicted = 0
	if l >= 1 {
		u.predicted = int(math.Ceil(l + 2*math.Sqrt(l)))
	}
	return u.predicted
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
