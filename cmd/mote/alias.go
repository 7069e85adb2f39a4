package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/system"
)

// cmdAlias manages aliases: alias set FN ALIAS VERSION [--weight V=P%] |
// alias ls FN | alias rm FN ALIAS.
func cmdAlias(args []string, stdout, stderr io.Writer) int {
	usage := "usage: mote alias set FUNCTION ALIAS VERSION [--weight VERSION=PERCENT%] | alias ls FUNCTION | alias rm FUNCTION ALIAS"
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("alias", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := clientFlags(fs)
	weight := fs.String("weight", "", "send PERCENT% of the alias's invocations to VERSION, e.g. 8=10%")
	pos, err := parse(fs, args[1:])
	if err != nil {
		return 2
	}
	switch {
	case args[0] == "set" && len(pos) == 3:
		n, err := strconv.Atoi(strings.TrimPrefix(pos[2], "v"))
		if err != nil {
			fmt.Fprintf(stderr, "mote: %q is not a version number\n", pos[2])
			return 2
		}
		a := registry.Alias{Version: n}
		if *weight != "" {
			w, err := parseWeight(*weight)
			if err != nil {
				fmt.Fprintf(stderr, "mote: %v\n", err)
				return 2
			}
			a.Weight = w
		}
		var out registry.Alias
		if err := c.json(http.MethodPut, "/v1/functions/"+url.PathEscape(pos[0])+"/aliases/"+url.PathEscape(pos[1]), a, &out); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "%s:%s → %s\n", out.Function, out.Name, describeAlias(&out))
	case args[0] == "ls" && len(pos) == 1:
		var f system.Function
		if err := c.json(http.MethodGet, "/v1/functions/"+url.PathEscape(pos[0]), nil, &f); err != nil {
			return fail(stderr, err)
		}
		printAliases(stdout, &f)
	case args[0] == "rm" && len(pos) == 2:
		if err := c.json(http.MethodDelete, "/v1/functions/"+url.PathEscape(pos[0])+"/aliases/"+url.PathEscape(pos[1]), nil, nil); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "removed alias %s:%s\n", pos[0], pos[1])
	default:
		fmt.Fprintln(stderr, usage)
		return 2
	}
	return 0
}

// parseWeight reads VERSION=PERCENT[%].
func parseWeight(s string) (*registry.Weight, error) {
	v, p, ok := strings.Cut(s, "=")
	n, err1 := strconv.Atoi(strings.TrimPrefix(v, "v"))
	pct, err2 := strconv.ParseFloat(strings.TrimSuffix(p, "%"), 64)
	if !ok || err1 != nil || err2 != nil {
		return nil, fmt.Errorf("--weight %q: want VERSION=PERCENT%%, e.g. 8=10%%", s)
	}
	return &registry.Weight{Version: n, Percent: pct}, nil
}

func describeAlias(a *registry.Alias) string {
	if a.Weight == nil {
		return fmt.Sprintf("version %d", a.Version)
	}
	return fmt.Sprintf("version %d (%g%%), version %d (%g%%)", a.Version, 100-a.Weight.Percent, a.Weight.Version, a.Weight.Percent)
}

// printAliases writes f's aliases and, for each, the invocations each
// version served since the server started.
func printAliases(w io.Writer, f *system.Function) {
	for _, a := range f.Aliases {
		fmt.Fprintf(w, "alias %s → %s", a.Name, describeAlias(a))
		var served []string
		for _, c := range f.AliasCounts {
			if c.Alias == a.Name {
				served = append(served, fmt.Sprintf("v%d: %d", c.Version, c.Invocations))
			}
		}
		if len(served) > 0 {
			fmt.Fprintf(w, "; served %s", strings.Join(served, ", "))
		}
		fmt.Fprintln(w)
	}
}
