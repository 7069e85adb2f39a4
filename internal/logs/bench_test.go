package logs

import "testing"

func BenchmarkAdd(b *testing.B) {
	s := benchStore(b)
	l := Line{Function: "f", Invocation: "18eb6e56c7a1b2c3d4e5f6a7", Stream: "log", Text: "greeting Berkeley for invocation 18eb6e56c7"}
	b.ReportAllocs()
	for b.Loop() {
		s.Add(l)
	}
}

func BenchmarkAddParallel(b *testing.B) {
	s := benchStore(b)
	l := Line{Function: "f", Invocation: "18eb6e56c7a1b2c3d4e5f6a7", Stream: "log", Text: "greeting Berkeley for invocation 18eb6e56c7"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Add(l)
		}
	})
}
