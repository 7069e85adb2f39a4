package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// kvInt reads key of bucket t as an integer (0 if missing).
func (s *server) kvInt(t *testing.T, key string) int {
	t.Helper()
	resp, err := http.Get(s.url + "/v1/kv/t/" + url.PathEscape(key))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusNotFound {
		return 0
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("kv get %s: %d %s", key, resp.StatusCode, b)
	}
	n, err := strconv.Atoi(string(b))
	if err != nil {
		t.Fatalf("kv get %s: %q", key, b)
	}
	return n
}

// kvKeys lists bucket t's keys under prefix.
func (s *server) kvKeys(t *testing.T, prefix string) []string {
	t.Helper()
	resp, err := http.Get(s.url + "/v1/kv/t?prefix=" + url.QueryEscape(prefix) + "&limit=1000")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Keys []string `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	return page.Keys
}

// eventually polls cond (the server is another process: there is no event
// to wait on) until it holds or 30 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func (s *server) kill9(t *testing.T) {
	t.Helper()
	s.cmd.Process.Kill()
	<-s.done
	s.done <- nil
}

// TestScheduleTickSurvivesKill9 kills the server in the middle of a
// scheduled run: after the restart that tick runs again, once, and
// completes once; no other tick runs twice.
func TestScheduleTickSurvivesKill9(t *testing.T) {
	guest := writeModule(t, "../../internal/trigger/testdata/guest", true)
	data := t.TempDir()
	s := startServerIn(t, data)
	if code, _, errOut := s.mote(t, "deploy", "g", guest, "--read", "t", "--write", "t"); code != 0 {
		t.Fatalf("deploy: %s", errOut)
	}
	if code, out, errOut := s.mote(t, "schedule", "add", "tick", "--rate", "2 seconds", "--fn", "g", "--payload", `{"sleep_ms":1000}`); code != 0 || !strings.Contains(out, "added schedule tick") {
		t.Fatalf("schedule add: %d %q %q", code, out, errOut)
	}
	var cut string
	eventually(t, "a run in progress", func() bool {
		for _, k := range s.kvKeys(t, "start/") {
			id := strings.TrimPrefix(k, "start/")
			if s.kvInt(t, "end/"+id) == 0 {
				cut = id
				return true
			}
		}
		return false
	})
	s.kill9(t)

	s = startServerIn(t, data)
	eventually(t, "the cut tick to finish", func() bool { return s.kvInt(t, "end/"+cut) > 0 })
	if got := s.kvInt(t, "start/"+cut); got != 2 {
		t.Errorf("tick %s started %d times, want 2 (cut short, then resumed)", cut, got)
	}
	// Let one more tick run after the resumed one, then check them all.
	n := len(s.kvKeys(t, "end/"))
	eventually(t, "a later tick", func() bool { return len(s.kvKeys(t, "end/")) > n })
	for _, k := range s.kvKeys(t, "end/") {
		if got := s.kvInt(t, k); got != 1 {
			t.Errorf("%s: %d, want every tick to finish once", k, got)
		}
		id := strings.TrimPrefix(k, "end/")
		if id != cut && s.kvInt(t, "start/"+id) != 1 {
			t.Errorf("tick %s started %d times", id, s.kvInt(t, "start/"+id))
		}
	}
	code, out, _ := s.mote(t, "schedule", "ls")
	if code != 0 || !strings.Contains(out, "tick") || !strings.Contains(out, "rate(2 seconds)") || !strings.Contains(out, " ok") {
		t.Errorf("schedule ls: %q", out)
	}
	if code, _, errOut := s.mote(t, "schedule", "add", "bad", "--cron", "61 * * * *", "--fn", "g"); code != 1 || !strings.Contains(errOut, "minute field") {
		t.Errorf("bad cron: code %d, %q", code, errOut)
	}
	if code, _, _ := s.mote(t, "schedule", "rm", "tick"); code != 0 {
		t.Error("schedule rm failed")
	}
}

// TestConsumerSurvivesKill9 kills the server while a consumer works
// through a queue: after the restart every item has been delivered at
// least once and none is lost.
func TestConsumerSurvivesKill9(t *testing.T) {
	guest := writeModule(t, "../../internal/trigger/testdata/guest", true)
	data := t.TempDir()
	s := startServerIn(t, data)
	if code, _, errOut := s.mote(t, "deploy", "g", guest, "--read", "t", "--write", "t"); code != 0 {
		t.Fatalf("deploy: %s", errOut)
	}
	if code, out, errOut := s.mote(t, "consumer", "add", "c", "--queue", "t/work", "--fn", "g", "--batch", "2", "--attempts", "2", "--backoff", "10ms"); code != 0 {
		t.Fatalf("consumer add: %d %q %q", code, out, errOut)
	}
	const n = 30
	var items []string
	for i := range n {
		items = append(items, fmt.Sprintf("slow-%d", i))
	}
	items = append(items, "fail-1")
	for _, it := range items {
		resp, err := http.Post(s.url+"/v1/queues/t/work", "text/plain", strings.NewReader(it))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("push: %d %s", resp.StatusCode, b)
		}
	}
	eventually(t, "some items done", func() bool { return len(s.kvKeys(t, "msg/")) >= 5 })
	s.kill9(t)

	s = startServerIn(t, data)
	eventually(t, "every item delivered", func() bool { return len(s.kvKeys(t, "msg/")) == n+1 })
	eventually(t, "the failing item dead-lettered", func() bool {
		_, out, _ := s.mote(t, "consumer", "ls")
		return strings.Contains(out, "c ") && strings.Contains(out, "t/work")
	})
	eventually(t, "the dead-letter queue to hold fail-1", func() bool {
		resp, err := http.Get(s.url + "/v1/queues/t/work-dlq")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var q struct {
			Length int `json:"length"`
		}
		json.NewDecoder(resp.Body).Decode(&q)
		return q.Length == 1
	})
	if got := s.kvInt(t, "msg/fail-1"); got != 2 {
		t.Errorf("fail-1 delivered %d times, want 2 (max attempts)", got)
	}
}

// TestWatchSurvivesKill9 writes keys to a watched bucket while the server
// is killed and restarted: every acknowledged write reaches the function
// at least once.
func TestWatchSurvivesKill9(t *testing.T) {
	guest := writeModule(t, "../../internal/trigger/testdata/guest", true)
	data := t.TempDir()
	s := startServerIn(t, data)
	if code, _, errOut := s.mote(t, "deploy", "g", guest, "--read", "t,w", "--write", "t"); code != 0 {
		t.Fatalf("deploy: %s", errOut)
	}
	if code, out, errOut := s.mote(t, "watch", "add", "wt", "--kv", "w", "--prefix", "in/", "--fn", "g", "--batch", "5"); code != 0 {
		t.Fatalf("watch add: %d %q %q", code, out, errOut)
	}
	put := func(s *server, key string) {
		req, _ := http.NewRequest(http.MethodPut, s.url+"/v1/kv/w/"+key, strings.NewReader("v"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("put %s: %d", key, resp.StatusCode)
		}
	}
	for i := range 40 {
		put(s, fmt.Sprintf("in/k%02d", i))
	}
	put(s, "out/ignored")
	eventually(t, "some events handled", func() bool { return len(s.kvKeys(t, "chg/")) >= 3 })
	s.kill9(t)

	s = startServerIn(t, data)
	for i := 40; i < 50; i++ {
		put(s, fmt.Sprintf("in/k%02d", i))
	}
	eventually(t, "every write delivered", func() bool { return len(s.kvKeys(t, "chg/put/")) == 50 })
	if got := s.kvInt(t, "chg/put/out/ignored"); got != 0 {
		t.Errorf("a key outside the prefix was delivered %d times", got)
	}
	if code, out, _ := s.mote(t, "watch", "ls"); code != 0 || !strings.Contains(out, "kv:w/in/*") {
		t.Errorf("watch ls: %q", out)
	}
}

// TestWatchObjects watches an object bucket: puts and deletes of objects
// reach the function, with the object's size.
func TestWatchObjects(t *testing.T) {
	guest := writeModule(t, "../../internal/trigger/testdata/guest", true)
	s := startServer(t)
	if code, _, errOut := s.mote(t, "deploy", "g", guest, "--read", "t,photos", "--write", "t"); code != 0 {
		t.Fatalf("deploy: %s", errOut)
	}
	if code, out, errOut := s.mote(t, "watch", "add", "th", "--obj", "photos", "--fn", "g"); code != 0 {
		t.Fatalf("watch add: %d %q %q", code, out, errOut)
	}
	f := writeFile(t, "pixels")
	if code, _, errOut := s.mote(t, "obj", "put", "photos", "a.png", f); code != 0 {
		t.Fatalf("obj put: %s", errOut)
	}
	if code, _, errOut := s.mote(t, "obj", "rm", "photos", "a.png"); code != 0 {
		t.Fatalf("obj rm: %s", errOut)
	}
	eventually(t, "the put and the delete delivered", func() bool {
		return s.kvInt(t, "chg/put/a.png") == 1 && s.kvInt(t, "chg/delete/a.png") == 1
	})
	// A watch of a bucket the function may not read is refused at creation.
	if code, _, errOut := s.mote(t, "watch", "add", "no", "--obj", "secret", "--fn", "g"); code != 1 || !strings.Contains(errOut, "forbidden") {
		t.Errorf("watch of a bucket g may not read: %d %q", code, errOut)
	}
}
