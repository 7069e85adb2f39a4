package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadMounts(t *testing.T) {
	dir := t.TempDir()
	info := strings.Join([]string{
		"31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
		"33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct",
		"35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
		"40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd",
		"41 31 0:38 / " + dir + " rw,relatime - cgroup2 cgroup2 rw,nsdelegate",
		"garbage line",
	}, "\n")
	p := filepath.Join(dir, "mountinfo")
	if err := os.WriteFile(p, []byte(info), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.controllers"), []byte("hugetlb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ms, err := readMounts(p)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.point+"="+strings.Join(m.controllers, ",")+map[bool]string{true: " v2", false: ""}[m.v2])
	}
	want := []string{
		"/sys/fs/cgroup/cpu,cpuacct=cpu,cpuacct",
		"/sys/fs/cgroup/memory=memory",
		"/sys/fs/cgroup/systemd=",
		dir + "=hugetlb v2",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("readMounts:\n got %q\nwant %q", got, want)
	}
}

func TestReadOwnCgroups(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cgroup")
	data := "4:memory:/process_api/abc\n2:cpu,cpuacct:/\n0::/user.slice\n"
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	own, err := readOwnCgroups(p)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"memory": "/process_api/abc", "cpu,cpuacct": "/", "": "/user.slice"} {
		if got := own[k]; got != want {
			t.Errorf("own[%q]: got %q, want %q", k, got, want)
		}
	}
}

func TestStatField(t *testing.T) {
	b := []byte("usage_usec 1234\nuser_usec 1000\nsystem_usec 234\n")
	tests := []struct {
		key  string
		want int64
		ok   bool
	}{
		{"usage_usec", 1234, true},
		{"system_usec", 234, true},
		{"nope", 0, false},
	}
	for _, tt := range tests {
		got, ok := statField(b, tt.key)
		if got != tt.want || ok != tt.ok {
			t.Errorf("statField(%q): got %d, %v; want %d, %v", tt.key, got, ok, tt.want, tt.ok)
		}
	}
}
