package mote

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkServeEvent is an HTTP function's work in the SDK: the event read,
// the handler run through a ServeMux, the response written.
func BenchmarkServeEvent(b *testing.B) {
	m := http.NewServeMux()
	m.HandleFunc("POST /hello", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Write(append([]byte("hello, "), body...))
	})
	ev := []byte(`{"version":"2.0","routeKey":"$default","rawPath":"/hello","rawQueryString":"","headers":{"accept":"*/*","content-length":"1","content-type":"application/x-www-form-urlencoded","host":"127.0.0.1:18931","user-agent":"curl/7.88.1","x-forwarded-for":"127.0.0.1","x-forwarded-prefix":"/web","x-forwarded-proto":"http"},"requestContext":{"accountId":"mote","apiId":"mote","domainName":"127.0.0.1:18931","domainPrefix":"127","requestId":"","routeKey":"$default","stage":"$default","time":"07/Dec/2026:20:52:00 +0000","timeEpoch":1796676720000,"http":{"method":"POST","path":"/hello","protocol":"HTTP/1.1","sourceIp":"127.0.0.1","userAgent":"curl/7.88.1"}},"body":"x","isBase64Encoded":false}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ServeEvent(nil, m, ev); err != nil {
			b.Fatal(err)
		}
	}
}
