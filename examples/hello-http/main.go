// Command hello-http is an HTTP function written with the Go SDK: a
// standard net/http handler (here a ServeMux), served by Mote as a wasm
// reactor or a native process function. Deploy it with "http": true:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o hello-http.wasm .
//	mote deploy hello-http hello-http.wasm --http
//	mote route add '/hello/*' hello-http --public
//	curl -i localhost:8080/hello/users/42?sort=asc
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	mote "github.com/mote-run/mote/sdk/go"
)

func init() { mote.HandleHTTP(mux()) }

// main runs only in the native build; a wasm reactor never calls it.
func main() { mote.Start() }

func mux() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello, world\n")
	})
	m.HandleFunc("/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		http.SetCookie(w, &http.Cookie{Name: "seen", Value: r.PathValue("id")})
		http.SetCookie(w, &http.Cookie{Name: "theme", Value: "dark"})
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"method": r.Method, "id": r.PathValue("id"), "sort": r.URL.Query().Get("sort"),
			"agent": r.UserAgent(), "body": string(body), "client": r.RemoteAddr,
			"prefix": r.Header.Get("X-Forwarded-Prefix"),
		})
	})
	m.HandleFunc("/bytes/{n}", func(w http.ResponseWriter, r *http.Request) {
		var n int
		fmt.Sscan(r.PathValue("n"), &n)
		w.Header().Set("Content-Type", "application/octet-stream")
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i)
		}
		w.Write(b)
	})
	m.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
		io.Copy(w, r.Body)
	})
	// POST /hello answers what the hello reactor answers, for
	// `mote bench http`.
	m.HandleFunc("POST /hello", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(append([]byte("hello, "), b...))
	})
	// GET /events is a stream of server-sent events: built natively (a
	// process function) each Flush reaches the client at once; in a
	// wasm reactor they arrive together when the handler returns.
	m.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 1; i <= 2; i++ {
			if i > 1 {
				time.Sleep(1500 * time.Millisecond) // the work each event reports on
			}
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
		}
	})
	m.HandleFunc("/ping", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "pong")
	})
	return m
}
