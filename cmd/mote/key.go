package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mote-run/mote/internal/auth"
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

const keyUsage = `usage: mote key create --scope SCOPE [--scope SCOPE...] [--expires 720h] [--name TEXT] [--json]
       mote key ls [--json]
       mote key revoke ID
scopes: admin, deploy, metrics, invoke:FN, read:BUCKET, write:BUCKET (FN or BUCKET may end in *)`

// cmdKey is `mote key create | ls | revoke`.
func cmdKey(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := clientFlags(fs)
	var scopes stringList
	fs.Var(&scopes, "scope", "a right the key holds (repeatable): admin, deploy, metrics, invoke:FN, read:BUCKET, write:BUCKET")
	expires := fs.Duration("expires", 0, "how long the key is valid (e.g. 720h); 0: until revoked")
	name := fs.String("name", "", "what the key is for")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return 2
	}
	switch {
	case len(pos) == 1 && pos[0] == "create":
		if len(scopes) == 0 {
			fmt.Fprintln(stderr, keyUsage)
			return 2
		}
		req := map[string]any{"name": *name, "scopes": scopes}
		if *expires > 0 {
			req["expires"] = expires.String()
		}
		var out struct {
			Key   auth.Key `json:"key"`
			Token string   `json:"token"`
		}
		if err := c.json(http.MethodPost, "/v1/keys", req, &out); err != nil {
			return fail(stderr, err)
		}
		if *asJSON {
			return printJSON(stdout, stderr, out)
		}
		// The token alone on stdout, for TOKEN=$(mote key create ...);
		// what it is on stderr.
		exp := "never expires"
		if !out.Key.Expires.IsZero() {
			exp = "expires " + out.Key.Expires.Local().Format(time.DateTime)
		}
		fmt.Fprintf(stderr, "created key %s (%s; %s); its token is shown only now:\n", out.Key.ID, scopeList(out.Key.Scopes), exp)
		fmt.Fprintln(stdout, out.Token)
		return 0
	case len(pos) == 1 && pos[0] == "ls":
		var out struct {
			Keys []auth.Key `json:"keys"`
		}
		if err := c.json(http.MethodGet, "/v1/keys", nil, &out); err != nil {
			return fail(stderr, err)
		}
		if *asJSON {
			return printJSON(stdout, stderr, out.Keys)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tCREATED\tEXPIRES\tLAST USED")
		for _, k := range out.Keys {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, orDash(k.Name), scopeList(k.Scopes), when(k.Created), when(k.Expires), when(k.LastUsed))
		}
		tw.Flush()
		return 0
	case len(pos) == 2 && pos[0] == "revoke":
		if err := c.json(http.MethodDelete, "/v1/keys/"+url.PathEscape(pos[1]), nil, nil); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "revoked key %s\n", pos[1])
		return 0
	}
	fmt.Fprintln(stderr, keyUsage)
	return 2
}

// cmdAudit is `mote audit [--since 24h|TIME] [--limit N] [--json]`.
func cmdAudit(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := clientFlags(fs)
	since := fs.String("since", "", "entries after this RFC 3339 time, or within this duration back from now (24h)")
	limit := fs.Int("limit", 0, "at most this many entries (default 100, at most 1000)")
	asJSON := fs.Bool("json", false, "print JSON")
	if pos, err := parse(fs, args); err != nil || len(pos) != 0 {
		fmt.Fprintln(stderr, "usage: mote audit [--since 24h|TIME] [--limit N] [--json]")
		return 2
	}
	q := url.Values{}
	if *since != "" {
		q.Set("since", *since)
	}
	if *limit > 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	path := "/v1/audit"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out struct {
		Entries []auth.Entry `json:"entries"`
	}
	if err := c.json(http.MethodGet, path, nil, &out); err != nil {
		return fail(stderr, err)
	}
	if *asJSON {
		return printJSON(stdout, stderr, out.Entries)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tWHO\tACTION\tTARGET\tSTATUS\tCLIENT")
	for _, e := range out.Entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", e.Time.Local().Format(time.DateTime), e.Who, e.Action, orDash(e.Target), e.Status, orDash(e.Client))
	}
	tw.Flush()
	return 0
}

func printJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fail(stderr, err)
	}
	return 0
}

func scopeList(scopes []auth.Scope) string {
	s := make([]string, len(scopes))
	for i, sc := range scopes {
		s[i] = string(sc)
	}
	return strings.Join(s, ",")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}
