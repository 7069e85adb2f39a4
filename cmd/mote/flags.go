package main

import (
	"flag"
	"fmt"
	"regexp"
	"strings"
	"time"
)

var (
	unknownFlag = regexp.MustCompile(`^flag provided but not defined: -+(.+)$`)
	badValue    = regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for flag -+([^:]+): `)
)

// flagError rewrites the flag package's errors to say what to do: the
// nearest defined flag for an unknown one, a unit for a bare duration.
func flagError(fs *flag.FlagSet, err error) error {
	msg := err.Error()
	if m := unknownFlag.FindStringSubmatch(msg); m != nil {
		if near := nearestFlag(fs, m[1]); near != "" {
			return fmt.Errorf("unknown flag %s; did you mean %s? (mote %s -h lists them)", dashed(m[1]), dashed(near), fs.Name())
		}
		return fmt.Errorf("unknown flag %s (mote %s -h lists them)", dashed(m[1]), fs.Name())
	}
	if m := badValue.FindStringSubmatch(msg); m != nil {
		value, name := m[1], m[2]
		if f := fs.Lookup(name); f != nil && isDuration(f) {
			if _, err := time.ParseDuration(value + "s"); err == nil {
				return fmt.Errorf("%s %s: a duration needs a unit: use %ss (or e.g. 500ms, 2m)", dashed(name), value, value)
			}
			return fmt.Errorf("%s %q is not a duration (want e.g. 30s, 500ms, 2m)", dashed(name), value)
		}
	}
	return err
}

// isDuration reports whether f holds a time.Duration.
func isDuration(f *flag.Flag) bool {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return false
	}
	_, ok = g.Get().(time.Duration)
	return ok
}

func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// nearestFlag returns the defined flag closest to name: one it is a
// prefix or extension of, else the smallest edit distance within a third
// of the name's length (at least 2).
func nearestFlag(fs *flag.FlagSet, name string) string {
	best, bestD := "", 1<<30
	fs.VisitAll(func(f *flag.Flag) {
		d := editDistance(name, f.Name)
		if strings.HasPrefix(f.Name, name) || strings.HasPrefix(name, f.Name) {
			d = min(d, 1)
		}
		if d < bestD || d == bestD && f.Name < best {
			best, bestD = f.Name, d
		}
	})
	if bestD > max(2, len(name)/3) {
		return ""
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
