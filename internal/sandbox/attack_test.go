package sandbox

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The attack suite: what a hostile function tries from inside its
// sandbox, each refused. Every test runs as the function would, a shell
// script in a sandboxed process, and checks the outcome the script
// prints. Issue 10 lists the findings these pin down.

// needOwnRoot skips a test where Mote cannot build a root of its own (not
// root, or no mount namespace): there is nothing to attack.
func needOwnRoot(t *testing.T, s *Sandbox) {
	t.Helper()
	if os.Geteuid() != 0 || s.root == "" {
		t.Skip("needs root and a mount namespace")
	}
}

// hostSecret writes a world-readable file in a fresh directory of the
// host (under dir, or the default temp directory) and returns its path.
func hostSecret(t *testing.T, dir string) string {
	t.Helper()
	d, err := os.MkdirTemp(dir, "mote-attack-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	os.Chmod(d, 0o755)
	p := filepath.Join(d, "secret")
	if err := os.WriteFile(p, []byte("host-secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAttackHostFilesAreNotVisible(t *testing.T) {
	s := newSandbox(t)
	needOwnRoot(t, s)
	inTmp := hostSecret(t, "")         // the host's /tmp, where finding 3 wrote
	inShm := hostSecret(t, "/dev/shm") // and its /dev/shm
	wd, _ := os.Getwd()                // a project directory
	script := strings.Join([]string{
		"cat " + inTmp + " 2>&1",
		"cat " + inShm + " 2>&1",
		"ls " + wd + " 2>&1",
		"cat /etc/shadow 2>&1",
		"ls /etc/ssl/private 2>&1",
		"test -s /etc/ssl/certs/ca-certificates.crt && echo tls-roots-ok",
		"ls /root /home /var /srv /sys/fs/cgroup 2>&1",
		"ls /proc/self/root/ | tr '\\n' ' '",
		"echo",
		"ls /proc/1/root/ 2>&1 | head -1",
	}, "; ")
	out, _ := run(t, s, Options{Name: "files"}, script)
	if strings.Contains(out, "host-secret") {
		t.Errorf("the function read a host file:\n%s", out)
	}
	for _, want := range []string{
		inTmp + ": No such file",
		inShm + ": No such file",
		wd + "': No such file",
		"/etc/shadow: No such file",
		"'/etc/ssl/private': No such file",
		"'/root': No such file",
		"'/sys/fs/cgroup': No such file",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// What it needs of /etc/ssl, the public roots, is there.
	if _, err := os.Stat("/etc/ssl/certs/ca-certificates.crt"); err == nil && !strings.Contains(out, "tls-roots-ok") {
		t.Errorf("the host's TLS roots are not visible:\n%s", out)
	}
	// Its root, seen through /proc/self/root, is the small one Mote built.
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "bin ") || strings.Contains(line, " etc ") {
			for _, host := range []string{" root ", " home ", " work ", " var ", " srv "} {
				if strings.Contains(" "+line+" ", host) {
					t.Errorf("/proc/self/root shows the host's %q: %s", host, line)
				}
			}
		}
	}
	if !strings.Contains(out, "Permission denied") {
		t.Errorf("/proc/1/root (the init's) was listed:\n%s", out)
	}
}

func TestAttackGrantedPathsAreReadOnly(t *testing.T) {
	s := newSandbox(t)
	needOwnRoot(t, s)
	code := filepath.Dir(hostSecret(t, ""))
	lib := filepath.Dir(hostSecret(t, ""))
	script := "cat " + code + "/secret; echo; cat " + lib + "/secret; echo; " +
		"touch " + code + "/x 2>&1; touch " + lib + "/x 2>&1; touch /usr/x 2>&1; touch /x 2>&1; " +
		"echo hi > /tmp/ok && cat /tmp/ok"
	// The process's directory (its code) and ReadOnly are visible, read-only.
	out, _ := runAt(t, s, Options{Name: "ro", ReadOnly: []string{lib}}, code, script)
	if strings.Count(out, "host-secret") != 2 {
		t.Errorf("granted paths not readable:\n%s", out)
	}
	if got := strings.Count(out, "Read-only file system"); got != 4 {
		t.Errorf("writes outside /tmp: got %d refusals, want 4:\n%s", got, out)
	}
	if !strings.HasSuffix(out, "hi") {
		t.Errorf("/tmp not writable:\n%s", out)
	}
	// Without the grant, the same code directory is not there.
	out, _ = run(t, s, Options{Name: "ro2", ReadOnly: []string{lib}}, script)
	if strings.Count(out, "host-secret") != 1 {
		t.Errorf("an ungranted code directory was visible:\n%s", out)
	}
}

func TestAttackTmpIsPrivateBoundedAndGone(t *testing.T) {
	s := newSandbox(t)
	needOwnRoot(t, s)
	const limit = 8 << 20
	// A memory bomb through /tmp: the tmpfs is full at TmpSize.
	script := "echo mark > /tmp/mark-" + strconv.Itoa(os.Getpid()) + "; ls -ld /tmp; " +
		"{ head -c 16777216 /dev/zero > /tmp/big; } 2>&1; echo rc=$?; " +
		"{ head -c 16777216 /dev/zero > /dev/shm/big; } 2>&1; echo rc=$?"
	out, _ := run(t, s, Options{Name: "tmp", MemoryLimit: 64 << 20, TmpSize: limit}, script)
	if strings.Count(out, "No space left on device") != 2 || strings.Count(out, "rc=1") != 2 {
		t.Errorf("writes past TmpSize: got\n%s\nwant two ENOSPC failures", out)
	}
	if !strings.Contains(out, "drwxrwxrwt") {
		t.Errorf("/tmp mode:\n%s", out)
	}
	// What it wrote was its own: the host's /tmp has no trace of it.
	if _, err := os.Stat(filepath.Join(os.TempDir(), "mark-"+strconv.Itoa(os.Getpid()))); err == nil {
		t.Errorf("the function's /tmp file is on the host")
	}
	// A second instance starts with an empty /tmp.
	out, _ = run(t, s, Options{Name: "tmp2"}, "ls -A /tmp | wc -l")
	if out != "0" {
		t.Errorf("a new instance's /tmp has %s entries, want 0", out)
	}
}

func TestAttackNeighboursAreUnreachable(t *testing.T) {
	s := newSandbox(t)
	needOwnRoot(t, s)
	// A neighbour that writes a file and waits.
	r, w, _ := os.Pipe()
	a, err := s.Start(Options{Name: "victim", Stdout: w, Stderr: w})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if err := a.Exec([]string{"sh", "-c", "echo victim-data > /tmp/v; echo ready; exec sleep 30"}, []string{"PATH=/usr/bin:/bin"}, "/"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	if _, err := r.Read(buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("victim did not start: %q %v", buf, err)
	}
	hostPid := a.Pid()
	script := "cat /tmp/v 2>&1; ls /proc | grep -c '^[0-9]'; kill -9 " + strconv.Itoa(hostPid) + " 2>&1; " +
		"cat /proc/self/cgroup; id -u"
	out, p := run(t, s, Options{Name: "attacker"}, script)
	if strings.Contains(out, "victim-data") {
		t.Errorf("read a neighbour's /tmp:\n%s", out)
	}
	if p.UID() == a.UID() {
		t.Errorf("two live instances share uid %d", p.UID())
	}
	select {
	case <-a.Done():
		t.Errorf("the attacker killed its neighbour:\n%s", out)
	default:
	}
	if strings.Contains(strings.Join(s.Namespaces(), ","), "cgroup") {
		// Its cgroup path is "/": the tree of other instances is not named.
		for _, line := range strings.Split(out, "\n") {
			id, _, _ := strings.Cut(line, ":")
			if _, err := strconv.Atoi(id); err == nil && strings.Count(line, ":") >= 2 && !strings.HasSuffix(line, ":/") {
				t.Errorf("cgroup path visible: %q", line)
			}
		}
	}
}

func TestAttackHostLoopbackIsUnreachable(t *testing.T) {
	s := newSandbox(t)
	needOwnRoot(t, s)
	if _, err := os.Stat("/bin/bash"); err != nil {
		t.Skip("needs bash for /dev/tcp")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
			accepted <- struct{}{}
		}
	}()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	out, _ := run(t, s, Options{Name: "net"}, "bash -c 'echo x > /dev/tcp/127.0.0.1/"+port+"' 2>&1; echo rc=$?")
	if !strings.Contains(out, "rc=1") {
		t.Errorf("reached the host's loopback listener:\n%s", out)
	}
	select {
	case <-accepted:
		t.Errorf("the host's listener accepted a connection from the function")
	case <-time.After(50 * time.Millisecond):
	}
}

func TestAttackEveryMountIsNosuid(t *testing.T) {
	s := newSandbox(t)
	needOwnRoot(t, s)
	out, _ := run(t, s, Options{Name: "mounts"}, "cat /proc/self/mountinfo")
	n := 0
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		n++
		if !strings.Contains(","+f[5]+",", ",nosuid,") {
			t.Errorf("mount %s is not nosuid: %s", f[4], line)
		}
	}
	if n == 0 {
		t.Fatalf("no mounts read:\n%s", out)
	}
}

func TestAttackNothingRunsWhileFrozen(t *testing.T) {
	s := newSandbox(t)
	if s.Controllers()[ctlFreezer] == "" || s.Controllers()[ctlCPU] == "" {
		t.Skip("needs the cgroup freezer and cpu accounting")
	}
	// A thread that spins after the handler returned (finding 6).
	r, w, _ := os.Pipe()
	p, err := s.Start(Options{Name: "spin", Stdout: w})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.Exec([]string{"sh", "-c", "echo go; while :; do :; done"}, []string{"PATH=/usr/bin:/bin"}, "/"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if _, err := r.Read(buf); err != nil {
		t.Fatal(err)
	}
	if err := p.Freeze(); err != nil {
		t.Fatal(err)
	}
	waitFrozen(t, p)
	c0, _ := p.CPU()
	time.Sleep(100 * time.Millisecond)
	c1, _ := p.CPU()
	if c1-c0 > time.Millisecond {
		t.Errorf("a frozen spinner used %v of CPU in 100ms", c1-c0)
	}
	if err := p.Thaw(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	c2, _ := p.CPU()
	if c2-c1 < 5*time.Millisecond {
		t.Errorf("a thawed spinner used only %v of CPU in 50ms", c2-c1)
	}
	// A frozen sandbox still dies when closed.
	if err := p.Freeze(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close of a frozen sandbox: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close of a frozen sandbox hangs")
	}
}

// waitFrozen waits until the kernel reports the group frozen.
func waitFrozen(t *testing.T, p *Proc) {
	t.Helper()
	file := filepath.Join(p.cg.freeze.dir, "freezer.state")
	want := "FROZEN"
	if p.cg.freeze.v2 {
		file, want = filepath.Join(p.cg.freeze.dir, "cgroup.events"), "frozen 1"
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(file); strings.Contains(string(b), want) {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("group not frozen after 5s")
}

// TestAttackSubmountsOfGrantedPathsAreReadOnly: a mount below a path
// granted read-only (a separate /usr/local, a tmpfs in a granted
// directory) is read-only and nosuid too. A recursive bind brought it
// along writable and with setuid allowed, as the host has it (a review
// found it; this test fails without readOnlyTree's recursion).
func TestAttackSubmountsOfGrantedPathsAreReadOnly(t *testing.T) {
	s := newSandbox(t)
	needOwnRoot(t, s)
	lib := filepath.Dir(hostSecret(t, ""))
	sub := filepath.Join(lib, "sub")
	if err := os.Mkdir(sub, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "mode=0777,size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs to test with: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(sub, unix.MNT_DETACH) })
	out, _ := run(t, s, Options{Name: "submount", ReadOnly: []string{lib}},
		"echo pwn > "+sub+"/x 2>&1; echo rc=$?; grep ' "+sub+" ' /proc/self/mountinfo")
	if !strings.Contains(out, "Read-only file system") || strings.Contains(out, "rc=0") {
		t.Errorf("wrote below a granted path:\n%s", out)
	}
	if !strings.Contains(out, "nosuid") || !strings.Contains(out, " ro,") {
		t.Errorf("the submount is not ro,nosuid:\n%s", out)
	}
}
