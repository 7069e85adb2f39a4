package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

func TestFlagErrors(t *testing.T) {
	tests := []struct {
		args    []string
		code    int
		wantErr string
	}{
		{[]string{"invoke", "f", "--data", "x"}, 2, "unknown flag --data; did you mean -d?"},
		{[]string{"deploy", "f", "x.wasm", "--memroy", "64MiB"}, 2, "unknown flag --memroy; did you mean --memory?"},
		{[]string{"deploy", "f", "x.wasm", "--timeout", "30"}, 2, "--timeout 30: a duration needs a unit: use 30s"},
		{[]string{"deploy", "f", "x.wasm", "--timeout", "soon"}, 2, `--timeout "soon" is not a duration`},
		{[]string{"logs", "--zzzzzzzz"}, 2, "unknown flag --zzzzzzzz (mote logs -h lists them)"},
		{[]string{"deploy", "-h"}, 0, "Usage of mote deploy:"},
		{[]string{"logs", "--help"}, 0, "Usage of mote logs:"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		code := run(tt.args, &out, &errOut)
		if code != tt.code || !strings.Contains(errOut.String(), tt.wantErr) {
			t.Errorf("mote %s: got code %d, stderr %q; want %d and %q", strings.Join(tt.args, " "), code, errOut.String(), tt.code, tt.wantErr)
		}
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"version"}, &out, io.Discard); code != 0 || !strings.HasPrefix(out.String(), "mote ") || !strings.Contains(out.String(), "commit ") || !strings.Contains(out.String(), "go1.") {
		t.Fatalf("mote version: code %d, %q", code, out.String())
	}
}

func TestUploadProgress(t *testing.T) {
	var log bytes.Buffer
	const total = 3*progressEvery + 100
	p := &progressReader{r: bytes.NewReader(make([]byte, total)), total: total, log: &log, start: time.Now()}
	if n, err := io.Copy(io.Discard, p); n != total || err != nil {
		t.Fatal(n, err)
	}
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) < 4 || !strings.Contains(lines[0], "uploading: ") || !strings.Contains(lines[len(lines)-1], "uploaded 25.2 MB") {
		t.Fatalf("progress: %q", log.String())
	}
}
