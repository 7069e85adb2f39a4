package process

import (
	"context"
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
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ev.Deadline = time.Now().Add(10 * time.Second)
				if _, _, err := in.Invoke(context.Background(), ev); err != nil {
					b.Fatal(err)
				}
			}
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
