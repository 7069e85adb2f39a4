package sandbox

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	MaybeRunInit()
	os.Exit(m.Run())
}

func newSandbox(t *testing.T) *Sandbox {
	t.Helper()
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// run starts sh -c script in a sandbox and returns its output.
func run(t *testing.T, s *Sandbox, o Options, script string) (string, *Proc) {
	t.Helper()
	return runAt(t, s, o, "/", script)
}

// runAt is run with the process's directory dir (its code, mounted
// read-only in its root).
func runAt(t *testing.T, s *Sandbox, o Options, dir, script string) (string, *Proc) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	o.Stdout, o.Stderr = w, w
	p, err := s.Start(o)
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.Exec([]string{"sh", "-c", script}, []string{"PATH=/usr/bin:/bin"}, dir); err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(r)
	r.Close()
	<-p.Done()
	return strings.TrimSpace(string(out)), p
}

func TestDetects(t *testing.T) {
	s := newSandbox(t)
	t.Logf("namespaces: %v; cgroups: %v", s.Namespaces(), s.Controllers())
	if os.Geteuid() != 0 {
		t.Skip("not root: nothing to detect")
	}
	if len(s.Namespaces()) == 0 && len(s.Controllers()) == 0 {
		t.Errorf("root, but no namespace and no cgroup controller works")
	}
	if !s.Confined() {
		t.Errorf("root with namespaces %v, but not confined", s.Namespaces())
	}
}

func TestIdentityAndNamespaces(t *testing.T) {
	s := newSandbox(t)
	out, p := run(t, s, Options{Name: "ident"}, "id -u; id -g; hostname; echo $$; ls /proc | grep -c '^[0-9]'")
	lines := strings.Split(out, "\n")
	if len(lines) != 5 {
		t.Fatalf("output: got %q", out)
	}
	ns := strings.Join(s.Namespaces(), ",")
	checks := []struct {
		name, got, want string
		when            bool
	}{
		{"uid", lines[0], strconv.Itoa(p.UID()), os.Geteuid() == 0},
		{"gid", lines[1], strconv.Itoa(p.UID()), os.Geteuid() == 0},
		{"uid in the reserved range", boolStr(p.UID() >= DefaultUIDBase && p.UID() < DefaultUIDBase+DefaultUIDCount), "true", os.Geteuid() == 0},
		{"hostname", lines[2], "mote", strings.Contains(ns, "uts")},
		// /proc shows the namespace's processes only: init, its threads, sh, ls, grep.
		{"few processes in /proc", boolStr(atoi(lines[4]) < 20), "true", strings.Contains(ns, "pid") && strings.Contains(ns, "mount")},
	}
	for _, c := range checks {
		if c.when && c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	if got := p.ExitStatus(); got != "exit status 0" {
		t.Errorf("exit: got %q, want exit status 0", got)
	}
}

func TestExitCodes(t *testing.T) {
	s := newSandbox(t)
	tests := []struct {
		script, want string
	}{
		{"exit 3", "exit status 3"},
		{"kill -9 $$", "exit status 137"},
	}
	for _, tt := range tests {
		_, p := run(t, s, Options{Name: "exit"}, tt.script)
		if got := p.ExitStatus(); got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.script, got, tt.want)
		}
		p.Close()
	}
}

func TestCommandNotFound(t *testing.T) {
	s := newSandbox(t)
	r, w, _ := os.Pipe()
	p, err := s.Start(Options{Name: "nf", Stderr: w})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Exec([]string{"no-such-command-xyz"}, []string{"PATH=/usr/bin"}, "/"); err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(r)
	<-p.Done()
	if got := p.ExitStatus(); got != "exit status 127" {
		t.Errorf("exit: got %q, want exit status 127", got)
	}
	if !bytes.Contains(out, []byte("no-such-command-xyz")) {
		t.Errorf("stderr: got %q, want it to name the command", out)
	}
}

func TestMemoryLimitAndCPU(t *testing.T) {
	s := newSandbox(t)
	if _, ok := s.Controllers()["memory"]; !ok {
		t.Skip("no memory controller")
	}
	// 64 MiB limit, 200 MiB of writes into a tmpfs-free pipe buffer: head
	// holds it all in memory.
	_, p := run(t, s, Options{Name: "hog", MemoryLimit: 64 << 20}, "head -c 200000000 /dev/zero | tail -c 200000000 >/dev/null")
	if p.OOMKills() == 0 {
		t.Errorf("OOMKills: got 0, want > 0 after exceeding the limit")
	}
	if cpu, err := p.CPU(); err != nil || cpu <= 0 {
		t.Errorf("CPU: got %v, %v; want > 0", cpu, err)
	}
}

func TestLookPath(t *testing.T) {
	tests := []struct {
		name, dir, path string
		ok              bool
	}{
		{"sh", "/", "/usr/bin:/bin", true},
		{"./sh", "/bin", "", true},
		{"/bin/sh", "/", "", true},
		{"nope-xyz", "/", "/usr/bin", false},
		{"./nope", "/", "", false},
		{"bin", "/", "/", false}, // a directory
	}
	for _, tt := range tests {
		_, err := LookPath(tt.name, tt.dir, []string{"PATH=" + tt.path})
		if got := err == nil; got != tt.ok {
			t.Errorf("LookPath(%q): got err %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestNoLeftovers(t *testing.T) {
	s := newSandbox(t)
	_, p := run(t, s, Options{Name: "bg"}, "sleep 44.5 & exit 0")
	p.Close()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && procsWith("44.5") > 0 {
		time.Sleep(10 * time.Millisecond)
	}
	if n := procsWith("44.5"); n != 0 {
		t.Errorf("background process left: got %d, want 0", n)
	}
}

func procsWith(marker string) int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(b, []byte("sleep\x00"+marker)) {
			n++
		}
	}
	return n
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// TestFiles checks that Options.Files reach the command as fds 3, 4, …
// and only there.
func TestFiles(t *testing.T) {
	s := newSandbox(t)
	dir := t.TempDir()
	var files []*os.File
	for _, text := range []string{"first", "second"} {
		f, err := os.CreateTemp(dir, "file")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(text); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Seek(0, 0); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	// The sandboxed user reads them through the fds although the paths
	// are not its own; then it counts the fds open on them.
	script := "cat <&3; echo; cat <&4; echo; ls -l /proc/$$/fd | grep -c " + dir
	out, _ := run(t, s, Options{Name: "files", Files: files}, script)
	if want := "first\nsecond\n2"; out != want {
		t.Errorf("got %q, want %q", out, want)
	}
}
