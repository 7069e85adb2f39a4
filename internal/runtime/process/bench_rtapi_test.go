package process

import (
	"bufio"
	"testing"
)

// BenchmarkRuntimeAPIRequest measures the Runtime API server's side of
// one kept-alive request over loopback: read, route, answer (a 404, so no
// invocation is needed), without a function process's noise.
func BenchmarkRuntimeAPIRequest(b *testing.B) {
	in, _ := channelInstance(&testing.T{})
	in.m.rt.cfg.APIHeaderTimeout, in.m.rt.cfg.APIBodyTimeout = DefaultAPIHeaderTimeout, DefaultAPIBodyTimeout
	a, c := tcpPair(&testing.T{})
	defer a.Close()
	defer c.Close()
	go in.serveHTTPConn(newSpinConn(a, 0), bufio.NewReaderSize(a, 16<<10))
	req := []byte("POST /2018-06-01/runtime/nope HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"name\":\"ada\"}")
	req = req[:len(req)-1]
	br := bufio.NewReader(c)
	cpu0 := selfCPU()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.Write(req)
		// The 404's JSON body ends the response.
		if _, err := br.ReadSlice('}'); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	// CPU per request, both sides: steadier than the latency on a
	// shared machine.
	b.ReportMetric(float64(selfCPU()-cpu0)/float64(b.N)/1e3, "cpu-µs/op")
	close(in.quit)
}
