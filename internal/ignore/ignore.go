// Package ignore reads .moteignore files: the paths of a function's
// directory that `mote deploy` leaves out of the upload, in the syntax of
// .gitignore (https://git-scm.com/docs/gitignore): one pattern a line, #
// comments, ! to re-include, a trailing / for directories only, a / at
// the start or in the middle to anchor at the directory's root, and * ? [
// ] and ** as globs.
package ignore

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// FileName is the name of the ignore file in a function's directory.
const FileName = ".moteignore"

// Defaults are left out even without a .moteignore: version control and
// the file itself, which are never part of a function.
var Defaults = []string{".git/", ".hg/", ".svn/", FileName}

type rule struct {
	pattern  string // slash-separated glob, without leading or trailing /
	negate   bool
	dirOnly  bool
	anchored bool // matches from the root only
}

// Matcher decides which paths are ignored.
type Matcher struct{ rules []rule }

// Parse reads patterns in .gitignore syntax.
func Parse(data []byte) *Matcher {
	m := &Matcher{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), 1<<20)
	for sc.Scan() {
		m.add(sc.Text())
	}
	return m
}

// Load returns the matcher for dir: the defaults, then dir/.moteignore
// if there is one.
func Load(dir string) (*Matcher, error) {
	m := Parse([]byte(strings.Join(Defaults, "\n")))
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, err
	}
	m.rules = append(m.rules, Parse(b).rules...)
	return m, nil
}

func (m *Matcher) add(line string) {
	line = strings.TrimRight(line, "\r")
	// Trailing spaces are ignored unless escaped.
	for strings.HasSuffix(line, " ") && !strings.HasSuffix(line, `\ `) {
		line = line[:len(line)-1]
	}
	if line == "" || line[0] == '#' {
		return
	}
	var r rule
	if line[0] == '!' {
		r.negate, line = true, line[1:]
	} else if line[0] == '\\' && len(line) > 1 && (line[1] == '!' || line[1] == '#') {
		line = line[1:]
	}
	if strings.HasSuffix(line, "/") {
		r.dirOnly, line = true, strings.TrimRight(line, "/")
	}
	if strings.Contains(line, "/") {
		r.anchored = true
		line = strings.TrimPrefix(line, "/")
	}
	if line == "" {
		return
	}
	r.pattern = line
	m.rules = append(m.rules, r)
}

// Match reports whether rel (slash-separated, relative to the root) is
// ignored; dir says whether it is a directory. A caller walking a tree
// skips an ignored directory's contents, as git does: a file under an
// ignored directory cannot be re-included.
func (m *Matcher) Match(rel string, dir bool) bool {
	ignored := false
	for _, r := range m.rules {
		if r.dirOnly && !dir {
			continue
		}
		if r.matches(rel) {
			ignored = !r.negate
		}
	}
	return ignored
}

func (r rule) matches(rel string) bool {
	if !r.anchored {
		// A pattern without a slash matches the name at any depth.
		return globMatch(r.pattern, path.Base(rel))
	}
	return matchSegments(strings.Split(r.pattern, "/"), strings.Split(rel, "/"))
}

// matchSegments matches path segments against pattern segments, where
// "**" stands for any number of segments.
func matchSegments(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			pat = pat[1:]
			if len(pat) == 0 {
				return true
			}
			for i := 0; i <= len(name); i++ {
				if matchSegments(pat, name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 || !globMatch(pat[0], name[0]) {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

func globMatch(pattern, name string) bool {
	ok, err := path.Match(pattern, name)
	return err == nil && ok
}
