package ignore

import "testing"

func TestMatch(t *testing.T) {
	m := Parse([]byte(`
# comment
*.log
!keep.log
build/
/top.txt
docs/*.md
a/**/z
\#literal
`))
	m.rules = append(Parse([]byte(".git/")).rules, m.rules...)
	tests := []struct {
		path string
		dir  bool
		want bool
	}{
		{"x.log", false, true},
		{"sub/x.log", false, true},
		{"keep.log", false, false},
		{"build", true, true},
		{"build", false, false}, // a file named build is not a directory
		{"src/build", true, true},
		{"top.txt", false, true},
		{"sub/top.txt", false, false},
		{"docs/a.md", false, true},
		{"docs/sub/a.md", false, false},
		{"a/z", false, true},
		{"a/b/c/z", false, true},
		{"b/a/z", false, false},
		{"#literal", false, true},
		{".git", true, true},
		{"main.go", false, false},
	}
	for _, tt := range tests {
		if got := m.Match(tt.path, tt.dir); got != tt.want {
			t.Errorf("Match(%q, dir=%v): got %v, want %v", tt.path, tt.dir, got, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("*.log\n!a\n/b/**/c/\n[x"), "b/q/c")
	f.Fuzz(func(t *testing.T, data []byte, p string) {
		m := Parse(data)
		m.Match(p, true)
		m.Match(p, false)
	})
}
