package baas

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mote-run/mote/internal/errs"
)

type httpClient struct {
	t *testing.T
	h http.Handler
}

func (c httpClient) do(method, path string, body io.Reader, hdr ...string) *httptest.ResponseRecorder {
	c.t.Helper()
	req := httptest.NewRequest(method, path, body)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, req)
	return rec
}

func wantStatus(t *testing.T, rec *httptest.ResponseRecorder, status int, code errs.Code) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d (%s), want %d", rec.Code, rec.Body.String(), status)
	}
	if code != "" {
		if got := rec.Header().Get("X-Mote-Error-Code"); got != string(code) {
			t.Errorf("error code %q, want %q", got, code)
		}
	}
}

func TestHTTPKV(t *testing.T) {
	s := newService(t)
	c := httpClient{t, s.Handler()}
	rec := c.do("PUT", "/v1/kv/b/users/1?ttl=60s", strings.NewReader("alice"))
	wantStatus(t, rec, 200, "")
	ver := rec.Header().Get("X-Mote-Version")
	rec = c.do("GET", "/v1/kv/b/users/1", nil)
	wantStatus(t, rec, 200, "")
	if rec.Body.String() != "alice" || rec.Header().Get("ETag") != `"`+ver+`"` || rec.Header().Get("X-Mote-Expires") == "" {
		t.Errorf("GET = %q etag %s expires %q", rec.Body, rec.Header().Get("ETag"), rec.Header().Get("X-Mote-Expires"))
	}
	wantStatus(t, c.do("PUT", "/v1/kv/b/users/1", strings.NewReader("bob"), "If-Match", `"`+ver+`"`), 200, "")
	wantStatus(t, c.do("PUT", "/v1/kv/b/users/1", strings.NewReader("eve"), "If-Match", ver), 409, errs.Conflict)
	wantStatus(t, c.do("PUT", "/v1/kv/b/users/1", strings.NewReader("eve"), "If-None-Match", "*"), 409, errs.Conflict)
	wantStatus(t, c.do("PUT", "/v1/kv/b/users/2", strings.NewReader("new"), "If-None-Match", "*"), 200, "")

	rec = c.do("POST", "/v1/kv/b/hits?op=incr&delta=4", nil)
	wantStatus(t, rec, 200, "")
	var incr struct{ Value int64 }
	json.Unmarshal(rec.Body.Bytes(), &incr)
	if incr.Value != 4 {
		t.Errorf("incr = %d, want 4", incr.Value)
	}
	rec = c.do("GET", "/v1/kv/b?prefix=users/&limit=1", nil)
	var page struct {
		Keys []string
		Next string `json:"next_cursor"`
	}
	json.Unmarshal(rec.Body.Bytes(), &page)
	if len(page.Keys) != 1 || page.Keys[0] != "users/1" || page.Next != "users/1" {
		t.Errorf("list page = %+v", page)
	}
	rec = c.do("POST", "/v1/kv/b?op=batch", strings.NewReader(`{"ops":[{"op":"put","key":"x","value":"eHl6"},{"op":"delete","key":"users/2"}]}`))
	wantStatus(t, rec, 200, "")
	if got := c.do("GET", "/v1/kv/b/x", nil).Body.String(); got != "xyz" {
		t.Errorf("batch put x = %q", got)
	}
	wantStatus(t, c.do("GET", "/v1/kv/b/users/2", nil), 404, errs.NotFound)
	wantStatus(t, c.do("DELETE", "/v1/kv/b/users/1", nil), 204, "")
	wantStatus(t, c.do("GET", "/v1/kv/b/users/1", nil), 404, errs.NotFound)

	bad := []struct {
		method, path, body string
		status             int
		code               errs.Code
	}{
		{"PUT", "/v1/kv/Bad..Bucket/k", "v", 400, errs.BadRequest},
		{"PUT", "/v1/kv/b/a%2F..%2Fk", "v", 400, errs.BadRequest},
		{"PUT", "/v1/kv/b/k%00", "v", 400, errs.BadRequest},
		{"PUT", "/v1/kv/b/k?ttl=forever", "v", 400, errs.BadRequest},
		{"PUT", "/v1/kv/b/k?durability=maybe", "v", 400, errs.BadRequest},
		{"PUT", "/v1/kv/b/k", strings.Repeat("x", 1<<20+1), 413, errs.PayloadTooLarge},
		{"POST", "/v1/kv/b?op=batch", "{not json", 400, errs.BadRequest},
		{"POST", "/v1/kv/b/k?op=frob", "", 400, errs.BadRequest},
		{"GET", "/v1/kv/b?cursor=zz&prefix=a", "", 400, errs.BadRequest},
		{"GET", "/v1/nope", "", 404, errs.NotFound},
	}
	for _, tt := range bad {
		rec := c.do(tt.method, tt.path, strings.NewReader(tt.body))
		if rec.Code != tt.status || rec.Header().Get("X-Mote-Error-Code") != string(tt.code) {
			t.Errorf("%s %s: %d %s, want %d %s", tt.method, tt.path, rec.Code, rec.Body, tt.status, tt.code)
		}
	}
}

// TestKVTTLOutOfRange sends TTLs out of range through every door (the
// PUT query, a batch's query and ops, host calls) and checks each is
// refused with bad_request naming the limit, and that the old value
// survives. ?ttl=2100000h was acknowledged, then the key read 404 and its
// old value was gone (fails without the fix).
func TestKVTTLOutOfRange(t *testing.T) {
	s := newService(t)
	c := httpClient{t, s.Handler()}
	wantStatus(t, c.do("PUT", "/v1/kv/b/k", strings.NewReader("old")), 200, "")
	for _, tc := range []struct{ method, path, body string }{
		{"PUT", "/v1/kv/b/k?ttl=2100000h", "new"},
		{"PUT", "/v1/kv/b/k?ttl=876001h", "new"},
		{"PUT", "/v1/kv/b/k?ttl=4000000000", "new"}, // seconds
		{"PUT", "/v1/kv/b/k?ttl=-1s", "new"},
		{"POST", "/v1/kv/b?op=batch&ttl=2100000h", `{"ops":[{"op":"put","key":"k","value":"bmV3"}]}`},
		{"POST", "/v1/kv/b?op=batch", `{"ops":[{"op":"put","key":"k","value":"bmV3","ttl":"2100000h"}]}`},
		{"POST", "/v1/kv/b?op=batch", `{"ops":[{"op":"put","key":"k","value":"bmV3","ttl":"-1s"}]}`},
	} {
		rec := c.do(tc.method, tc.path, strings.NewReader(tc.body))
		if rec.Code != 400 || rec.Header().Get("X-Mote-Error-Code") != string(errs.BadRequest) {
			t.Errorf("%s %s: %d %s, want 400 bad_request", tc.method, tc.path, rec.Code, rec.Body)
		}
		if !strings.Contains(tc.path+tc.body, "-1s") && !strings.Contains(rec.Body.String(), "876000h") {
			t.Errorf("%s %s: %s, want the maximum named", tc.method, tc.path, rec.Body)
		}
	}
	for _, args := range [][]string{
		{OpKVPut, "b", "k", "new", "7560000000000"}, // 2,100,000 h in ms
		{OpKVCAS, "b", "k", "0", "new", "7560000000000"},
		{OpKVPut, "b", "k", "new", "-1"},
	} {
		if _, err := call(t, s, admin, args[0], args[1:]...); errs.CodeOf(err) != errs.BadRequest {
			t.Errorf("%q: %v, want bad_request", args, err)
		}
	}
	rec := c.do("GET", "/v1/kv/b/k", nil)
	if rec.Code != 200 || rec.Body.String() != "old" || rec.Header().Get("X-Mote-Expires") != "" {
		t.Errorf("after refused writes: %d %q expires %q; want old, never", rec.Code, rec.Body, rec.Header().Get("X-Mote-Expires"))
	}
	wantStatus(t, c.do("PUT", "/v1/kv/b/max?ttl=876000h", strings.NewReader("x")), 200, "")
}

func TestHTTPObjects(t *testing.T) {
	s := newService(t)
	c := httpClient{t, s.Handler()}
	data := bytes.Repeat([]byte("0123456789"), 50_000)
	sum := sha256.Sum256(data)
	rec := c.do("PUT", "/v1/objects/media/v/clip.bin", bytes.NewReader(data), "Content-Type", "video/x-test")
	wantStatus(t, rec, 201, "")
	var info struct {
		Size   int64
		SHA256 string
	}
	json.Unmarshal(rec.Body.Bytes(), &info)
	if info.Size != int64(len(data)) || info.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("put info = %+v", info)
	}
	rec = c.do("GET", "/v1/objects/media/v/clip.bin", nil)
	wantStatus(t, rec, 200, "")
	if !bytes.Equal(rec.Body.Bytes(), data) || rec.Header().Get("Content-Type") != "video/x-test" {
		t.Errorf("GET returned %d bytes, type %q", rec.Body.Len(), rec.Header().Get("Content-Type"))
	}
	rec = c.do("GET", "/v1/objects/media/v/clip.bin", nil, "Range", "bytes=10-19")
	wantStatus(t, rec, 206, "")
	if rec.Body.String() != "0123456789" {
		t.Errorf("range body = %q", rec.Body)
	}
	rec = c.do("HEAD", "/v1/objects/media/v/clip.bin", nil)
	wantStatus(t, rec, 200, "")
	if rec.Header().Get("Content-Length") != "500000" || rec.Body.Len() != 0 || rec.Header().Get("X-Mote-Sha256") != info.SHA256 {
		t.Errorf("HEAD headers %v body %d", rec.Header(), rec.Body.Len())
	}
	rec = c.do("GET", "/v1/objects/media?prefix=v/", nil)
	if !strings.Contains(rec.Body.String(), `"key":"v/clip.bin"`) {
		t.Errorf("list = %s", rec.Body)
	}
	wantStatus(t, c.do("DELETE", "/v1/objects/media/v/clip.bin", nil), 204, "")
	wantStatus(t, c.do("GET", "/v1/objects/media/v/clip.bin", nil), 404, errs.NotFound)
	// The mux redirects a raw "../" path to its clean form; an escaped one
	// reaches the key check.
	wantStatus(t, c.do("PUT", "/v1/objects/media/..%2F..%2Fx", strings.NewReader("x")), 400, errs.BadRequest)
	if rec := c.do("PUT", "/v1/objects/media/../../x", strings.NewReader("x")); rec.Code < 300 || rec.Code >= 400 {
		t.Errorf("raw dot-dot path: %d, want a redirect", rec.Code)
	}
}

func TestHTTPCoordination(t *testing.T) {
	s := newService(t)
	c := httpClient{t, s.Handler()}
	rec := c.do("POST", "/v1/counters/app/visits?delta=2", nil)
	wantStatus(t, rec, 200, "")
	if got := c.do("GET", "/v1/counters/app/visits", nil).Body.String(); strings.TrimSpace(got) != `{"value":2}` {
		t.Errorf("counter = %s", got)
	}
	wantStatus(t, c.do("POST", "/v1/queues/app/jobs", strings.NewReader("job-1")), 200, "")
	if got := c.do("GET", "/v1/queues/app/jobs", nil).Body.String(); strings.TrimSpace(got) != `{"length":1}` {
		t.Errorf("queue len = %s", got)
	}
	rec = c.do("POST", "/v1/queues/app/jobs?op=pop&timeout=1s", nil)
	if rec.Code != 200 || rec.Body.String() != "job-1" {
		t.Errorf("pop = %d %q", rec.Code, rec.Body)
	}
	wantStatus(t, c.do("POST", "/v1/queues/app/jobs?op=pop&timeout=10ms", nil), 504, errs.Timeout)
	if got := c.do("POST", "/v1/signals/app/go", strings.NewReader("x")).Body.String(); strings.TrimSpace(got) != `{"woken":0}` {
		t.Errorf("publish = %s", got)
	}
	mustCall(t, s, Caller{Root: "tree-9"}, OpEphPut, "k", "v")
	wantStatus(t, c.do("DELETE", "/v1/scopes/tree-9", nil), 204, "")
	if _, err := call(t, s, Caller{Root: "tree-9"}, OpEphGet, "k"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("scope after DELETE: %v", err)
	}
	rec = c.do("GET", "/v1/baas/stats", nil)
	if !strings.Contains(rec.Body.String(), `"kv_cache"`) {
		t.Errorf("stats = %s", rec.Body)
	}
}

func FuzzHTTPKVPut(f *testing.F) {
	f.Add("b", "k", []byte("v"), "30s")
	f.Add("..", "a/../b", []byte{}, "-1")
	s := newService(f)
	h := s.Handler()
	f.Fuzz(func(t *testing.T, bucket, key string, body []byte, ttl string) {
		req, err := http.NewRequest("PUT", "http://x/v1/kv/"+bucket+"/"+key+"?ttl="+ttl, bytes.NewReader(body))
		if err != nil {
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("PUT %s/%s ttl=%q: %d %s", bucket, key, ttl, rec.Code, rec.Body)
		}
	})
}
