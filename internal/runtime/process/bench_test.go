package process

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/runtime"
)

// benchSpecs are the functions the benchmarks run: the test binary's
// echo (net/http client), the Go SDK's native build, an unchanged
// aws-lambda-go function, and the Python and Node SDKs' examples.
var benchLangs = []string{"test-echo", "go-sdk", "go-lambda", "python", "node"}

func benchSpec(b *testing.B, lang string) (runtime.Spec, string) {
	b.Helper()
	if lang == "test-echo" {
		return testSpec("echo"), `{"name":"ada"}`
	}
	spec := langSpec(b, lang)
	if lang == "go-sdk" {
		return spec, "hello"
	}
	return spec, `{"name":"ada"}`
}

// selfCPU is this process's CPU time so far (user and system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// nopHost drops log lines.
type nopHost struct{}

func (nopHost) Call(ctx context.Context, op string, args [][]byte) ([]byte, error) { return nil, nil }

// BenchmarkInvokeWarm measures one warm invocation's round trip: event
// handed to the waiting function, its response read back, CPU read from
// the cgroup before and after.
func BenchmarkInvokeWarm(b *testing.B) {
	rt := newRuntime(b)
	for _, lang := range benchLangs {
		b.Run(lang, func(b *testing.B) {
			spec, payload := benchSpec(b, lang)
			in := startInstance(b, rt, spec)
			ev := &runtime.Event{ID: "bench", Payload: []byte(payload), Host: nopHost{}}
			var fnCPU time.Duration
			self0 := selfCPU()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ev.Deadline = time.Now().Add(10 * time.Second)
				_, u, err := in.Invoke(context.Background(), ev)
				if err != nil {
					b.Fatal(err)
				}
				fnCPU += u.CPU
			}
			b.StopTimer()
			// CPU per invocation, on each side: less noisy than the
			// latency on a shared machine.
			b.ReportMetric(float64(selfCPU()-self0)/float64(b.N)/1e3, "mote-cpu-µs/op")
			b.ReportMetric(float64(fnCPU)/float64(b.N)/1e3, "fn-cpu-µs/op")
		})
	}
}

// BenchmarkColdStart measures NewInstance (sandbox, init, the function's
// own start-up until it asks for an event) plus its first invocation.
func BenchmarkColdStart(b *testing.B) {
	rt := newRuntime(b)
	for _, lang := range benchLangs {
		b.Run(lang, func(b *testing.B) {
			spec, payload := benchSpec(b, lang)
			mod, err := rt.Load(context.Background(), spec)
			if err != nil {
				b.Fatal(err)
			}
			ev := &runtime.Event{ID: "bench", Payload: []byte(payload), Host: nopHost{}}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				in, err := mod.NewInstance(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				ev.Deadline = time.Now().Add(10 * time.Second)
				if _, _, err := in.Invoke(context.Background(), ev); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				in.Close(context.Background())
				b.StartTimer()
			}
		})
	}
}
