package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mote-run/mote/internal/secrets"
	"github.com/mote-run/mote/internal/system"
)

// secretStdin is where `mote secret set` reads a value; tests replace it.
var secretStdin io.Reader = os.Stdin

// cmdSecret is `mote secret set NAME [--from-file F] | ls [--json] | rm NAME`.
func cmdSecret(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("secret", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := clientFlags(fs)
	fromFile := fs.String("from-file", "", "set: read the value from this file, byte for byte (default: stdin, less one trailing newline)")
	asJSON := fs.Bool("json", false, "ls: print JSON")
	pos, err := parse(fs, args)
	usage := "usage: mote secret set NAME [--from-file FILE] (value on stdin) | ls [--json] | rm NAME"
	if err != nil || len(pos) < 1 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	switch verb := pos[0]; {
	case verb == "set" && len(pos) == 2:
		return secretSet(c, pos[1], *fromFile, stdout, stderr)
	case verb == "ls" && len(pos) == 1:
		return secretList(c, *asJSON, stdout, stderr)
	case verb == "rm" && len(pos) == 2:
		if err := c.json(http.MethodDelete, "/v1/secrets/"+url.PathEscape(pos[1]), nil, nil); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "removed secret %s\n", pos[1])
		return 0
	}
	fmt.Fprintln(stderr, usage)
	return 2
}

// secretSet sends the value; it never takes one from the command line,
// where other users see it in ps and it stays in shell history.
func secretSet(c *client, name, fromFile string, stdout, stderr io.Writer) int {
	if err := secrets.ValidName(name); err != nil {
		return fail(stderr, err)
	}
	value, err := readSecretValue(name, fromFile, stderr)
	if err != nil {
		return fail(stderr, err)
	}
	var out system.SecretSet
	err = c.jsonBody(http.MethodPut, "/v1/secrets/"+url.PathEscape(name), bytes.NewReader(value), &out)
	clear(value)
	if err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "set secret %s version %d\n", out.Name, out.Version)
	if len(out.Refreshed) > 0 {
		fmt.Fprintf(stdout, "new instances of %s start with the new value\n", strings.Join(out.Refreshed, ", "))
	}
	for v, why := range out.Failed {
		fmt.Fprintf(stderr, "mote: %s keeps the old value until its next deploy: %s\n", v, why)
	}
	return 0
}

func readSecretValue(name, fromFile string, stderr io.Writer) ([]byte, error) {
	if fromFile != "" {
		return os.ReadFile(fromFile)
	}
	if f, ok := secretStdin.(*os.File); ok {
		if t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
			return readHidden(f, t, name, stderr)
		}
	}
	b, err := io.ReadAll(io.LimitReader(secretStdin, secrets.MaxValue+2))
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	return b, nil
}

// readHidden reads one line from a terminal with echo off.
func readHidden(f *os.File, t *unix.Termios, name string, stderr io.Writer) ([]byte, error) {
	fmt.Fprintf(stderr, "value for %s (not echoed): ", name)
	defer fmt.Fprintln(stderr)
	quiet := *t
	quiet.Lflag &^= unix.ECHO
	if err := unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, &quiet); err != nil {
		return nil, err
	}
	defer unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, t)
	var line []byte
	b := make([]byte, 1)
	for {
		n, err := f.Read(b)
		if n == 1 && b[0] != '\n' {
			line = append(line, b[0])
			if len(line) > secrets.MaxValue {
				return nil, errors.New("value too long")
			}
			continue
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
		return bytes.TrimSuffix(line, []byte("\r")), nil
	}
}

func secretList(c *client, asJSON bool, stdout, stderr io.Writer) int {
	var out struct {
		Secrets []system.Secret `json:"secrets"`
	}
	if err := c.json(http.MethodGet, "/v1/secrets", nil, &out); err != nil {
		return fail(stderr, err)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out.Secrets); err != nil {
			return fail(stderr, err)
		}
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tUPDATED\tFUNCTIONS")
	for _, s := range out.Secrets {
		fns := strings.Join(s.Functions, ",")
		if fns == "" {
			fns = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", s.Name, s.Version, s.Updated.Local().Format(time.DateTime), fns)
	}
	tw.Flush()
	return 0
}
