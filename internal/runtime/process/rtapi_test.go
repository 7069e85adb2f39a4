package process

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/runtime"
)

// TestRuntimeAPIServer drives the Runtime API's HTTP server with raw
// requests: the framings real runtimes use (Content-Length, chunked,
// Expect: 100-continue, HTTP/1.0, Connection: close) and bad input.
func TestRuntimeAPIServer(t *testing.T) {
	for _, tc := range []struct {
		name       string
		req        string
		wantStatus []int // status lines, in order
		wantOut    string
		wantCode   errs.Code // of the call, when the request finishes it
		wantClosed bool      // the server closes the connection after
	}{
		{"content-length", "POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
			[]int{202}, "hello", "", false},
		{"chunked", "POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nhel\r\n2\r\nlo\r\n0\r\nTrailer: t\r\n\r\n",
			[]int{202}, "hello", "", false},
		{"expect 100-continue", "POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
			[]int{100, 202}, "ok", "", false},
		{"http/1.0 closes", "POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.0\r\nContent-Length: 2\r\n\r\nok",
			[]int{202}, "ok", "", true},
		{"connection close", "POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
			[]int{202}, "ok", "", true},
		{"absolute form and query", "POST http://127.0.0.1:9001/2018-06-01/runtime/invocation/req-1/response?x=1 HTTP/1.1\r\nContent-Length: 2\r\n\r\nok",
			[]int{202}, "ok", "", false},
		{"function error", "POST /2018-06-01/runtime/invocation/req-1/error HTTP/1.1\r\nContent-Length: 40\r\n\r\n{\"errorMessage\":\"bad\",\"errorType\":\"E\"}  ",
			[]int{202}, `{"errorMessage":"bad","errorType":"E"}  `, errs.FunctionError, false},
		{"too large", "POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
			[]int{413}, "", errs.FunctionError, true},
		{"wrong id", "POST /2018-06-01/runtime/invocation/other/response HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
			[]int{400}, "", "", false},
		{"unknown path", "GET /nope HTTP/1.1\r\n\r\n", []int{404}, "", "", false},
		{"next needs GET", "POST /2018-06-01/runtime/invocation/next HTTP/1.1\r\nContent-Length: 0\r\n\r\n", []int{405}, "", "", false},
		{"malformed", "HELLO\r\n\r\n", []int{400}, "", "", true},
		{"bad length", "POST /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n", []int{400}, "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, cl := channelInstance(t)
			in.cur.Store(cl)
			a, b := tcpPair(t)
			go func() { // as demuxListener.route does
				in.serveHTTPConn(newSpinConn(a, 0), bufio.NewReader(a))
				a.Close()
			}()
			b.Write([]byte(tc.req))
			br := bufio.NewReader(b)
			for _, want := range tc.wantStatus {
				b.SetReadDeadline(time.Now().Add(5 * time.Second))
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("reading the response: %v", err)
				}
				io.Copy(io.Discard, resp.Body)
				if resp.StatusCode != want {
					t.Errorf("status: got %d, want %d", resp.StatusCode, want)
				}
			}
			if tc.wantOut != "" || tc.wantCode != "" {
				select {
				case <-cl.done:
				case <-time.After(5 * time.Second):
					t.Fatal("the call was not finished")
				}
				if string(cl.output) != tc.wantOut || errs.CodeOf(cl.err) != tc.wantCode {
					t.Errorf("call: got %q, %v; want %q, code %q", cl.output, cl.err, tc.wantOut, tc.wantCode)
				}
			}
			b.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			_, err := br.ReadByte()
			closed := err == io.EOF
			if closed != tc.wantClosed {
				t.Errorf("connection closed after: got %v (%v), want %v", closed, err, tc.wantClosed)
			}
		})
	}
}

// TestRuntimeAPINext: GET …/next hands over the event with the Lambda
// headers, on a kept-alive connection.
func TestRuntimeAPINext(t *testing.T) {
	in, cl := channelInstance(t)
	in.next = make(chan *call, 1)
	in.m.spec = runtime.Spec{Function: "f"}
	cl.ev.Depth = 2
	in.next <- cl
	a, b := tcpPair(t)
	go in.serveHTTPConn(newSpinConn(a, 0), bufio.NewReader(a))
	br := bufio.NewReader(b)
	for i := 0; i < 2; i++ { // the second request finds the call gone and waits: checked by the deadline
		b.Write([]byte("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n"))
		b.SetReadDeadline(time.Now().Add(2 * time.Second))
		if i == 1 {
			b.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		}
		resp, err := http.ReadResponse(br, nil)
		if i == 1 {
			if err == nil {
				t.Errorf("second next: got %d, want no answer while no event is waiting", resp.StatusCode)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		for k, want := range map[string]string{hdrRequestID: "req-1", hdrDepth: "2", "Content-Type": "application/json"} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("%s: got %q, want %q", k, got, want)
			}
		}
		if !strings.Contains(resp.Header.Get(hdrARN), ":function:f") || string(body) != "payload" {
			t.Errorf("ARN %q, body %q", resp.Header.Get(hdrARN), body)
		}
	}
	close(in.quit)
}
