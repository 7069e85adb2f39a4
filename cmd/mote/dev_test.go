package main

import (
	"bufio"
	"context"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDevRedeploysOnSave: mote dev deploys, answers, streams the
// function's log, and on a save redeploys and answers with the new code.
func TestDevRedeploysOnSave(t *testing.T) {
	s := startServer(t)
	dir := filepath.Join(t.TempDir(), "devfn")
	if code, _, errOut := local(t, "new", "devfn", "--template", "python", "--dir", dir); code != 0 {
		t.Fatal(errOut)
	}
	c := &client{base: s.url, http: &http.Client{}}
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	d := addDeployFlags(fs)
	if _, err := parse(fs, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- devLoop(ctx, c, d, devOptions{dir: dir, event: `{"name":"Ada"}`, poll: 20 * time.Millisecond}, pw, io.Discard)
		pw.Close()
	}()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var seen []string
	waitFor := func(want ...string) {
		t.Helper()
		for _, l := range seen {
			all := true
			for _, w := range want {
				all = all && strings.Contains(l, w)
			}
			if all {
				return
			}
		}
		timeout := time.After(60 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("mote dev ended before %q", want)
				}
				t.Log(l)
				seen = append(seen, l)
				all := true
				for _, w := range want {
					all = all && strings.Contains(l, w)
				}
				if all {
					return
				}
			case <-timeout:
				t.Fatalf("no line with %q", want)
			}
		}
	}
	waitFor("devfn version 1 answered", "hello, Ada", `"version": "1"`) // "0" before the module was loaded numbered
	waitFor("greets Ada")                                               // the function's own log line, streamed
	waitFor("REPORT RequestId: ", "Billed Duration: ")
	src := filepath.Join(dir, "handler.py")
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, []byte(strings.Replace(string(b), `f"hello, {name}"`, `f"hi again, {name}"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor("devfn version 2 answered", "after the change", "hi again, Ada", `"version": "2"`)
	cancel()
	go func() {
		for range lines {
		}
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
