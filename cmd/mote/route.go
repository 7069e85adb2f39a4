package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/routes"
)

// cmdRoute manages routes to functions: route add PATTERN FN [--public]
// [--cors ORIGINS] | route ls | route rm PATTERN.
func cmdRoute(args []string, stdout, stderr io.Writer) int {
	usage := "usage: mote route add '[HOST]/PATH[/*]' FUNCTION [--public] [--cors ORIGIN,...] | route ls | route rm PATTERN"
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("route", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := clientFlags(fs)
	var public, credentials bool
	var cors, methods, headers string
	var maxAge int
	fs.BoolVar(&public, "public", false, "anyone may call it, without a token (default: a key allowed to invoke the function)")
	fs.StringVar(&cors, "cors", "", "origins allowed cross-origin (comma-separated, or *): Mote answers preflights")
	fs.StringVar(&methods, "cors-methods", "", "methods allowed cross-origin (default GET,HEAD,POST)")
	fs.StringVar(&headers, "cors-headers", "", "request headers allowed cross-origin")
	fs.IntVar(&maxAge, "cors-max-age", 0, "seconds a browser may cache a preflight")
	fs.BoolVar(&credentials, "cors-credentials", false, "allow cookies and credentials cross-origin")
	pos, err := parse(fs, args[1:])
	if err != nil {
		return 2
	}
	switch args[0] {
	case "add":
		if len(pos) != 2 {
			fmt.Fprintln(stderr, usage)
			return 2
		}
		rt := routes.Route{Pattern: pos[0], Function: pos[1], Public: public}
		if cors != "" {
			rt.CORS = &routes.CORS{Origins: splitList(cors), Methods: splitList(methods), Headers: splitList(headers), MaxAge: maxAge, Credentials: credentials}
		}
		var out routes.Route
		if err := c.json(http.MethodPost, "/v1/routes", rt, &out); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "%s → %s (%s)\n", out.Pattern, out.Function, access(out.Public))
	case "ls":
		var list struct{ Routes []routes.Route }
		if err := c.json(http.MethodGet, "/v1/routes", nil, &list); err != nil {
			return fail(stderr, err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PATTERN\tFUNCTION\tACCESS\tCORS\tCREATED")
		for _, r := range list.Routes {
			corsText := "-"
			if r.CORS != nil {
				corsText = strings.Join(r.CORS.Origins, ",")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Pattern, r.Function, access(r.Public), corsText, r.Created.Local().Format(time.DateTime))
		}
		tw.Flush()
	case "rm":
		if len(pos) != 1 {
			fmt.Fprintln(stderr, usage)
			return 2
		}
		if err := c.json(http.MethodDelete, "/v1/routes?pattern="+url.QueryEscape(pos[0]), nil, nil); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "removed route %s\n", pos[0])
	default:
		fmt.Fprintln(stderr, usage)
		return 2
	}
	return 0
}

func access(public bool) string {
	if public {
		return "public"
	}
	return "private"
}

// httpFlag is deploy's --http: alone it means true (payload format 2.0),
// --http=wagi a WAGI command, --http=false a plain function.
type httpFlag struct{ mode *registry.HTTPMode }

func (f httpFlag) String() string {
	if f.mode == nil {
		return ""
	}
	return string(*f.mode)
}

func (f httpFlag) Set(s string) error {
	switch s {
	case "true", "v2":
		*f.mode = registry.HTTPv2
	case "false":
		*f.mode = registry.HTTPOff
	case "wagi":
		*f.mode = registry.HTTPWAGI
	default:
		return errors.New(`want --http, --http=wagi or --http=false`)
	}
	return nil
}

func (f httpFlag) IsBoolFlag() bool { return true }
