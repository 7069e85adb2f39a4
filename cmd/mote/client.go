package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/mote-run/mote/internal/errs"
)

// client is the CLI's HTTP client of a Mote server.
type client struct {
	base  string
	token string
	http  *http.Client
}

// clientFlags adds --server and --token to fs.
func clientFlags(fs *flag.FlagSet) *client {
	c := &client{http: &http.Client{}}
	server := os.Getenv("MOTE_SERVER")
	if server == "" {
		server = "http://127.0.0.1:8080"
	}
	fs.StringVar(&c.base, "server", server, "server URL (env MOTE_SERVER)")
	fs.StringVar(&c.token, "token", os.Getenv("MOTE_TOKEN"), "bearer token (env MOTE_TOKEN)")
	return c
}

func (c *client) request(method, path string, body io.Reader, contentType string) (*http.Request, error) {
	req, err := http.NewRequest(method, strings.TrimRight(c.base, "/")+path, body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// do sends a request and returns the response if it succeeded, or the
// server's error with its code.
func (c *client) do(req *http.Request) (*http.Response, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the Mote server at %s: %w", c.base, err)
	}
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		return nil, errs.FromHTTP(resp.StatusCode, b)
	}
	return resp, nil
}

// json sends a request and decodes a JSON response into out (if non-nil).
func (c *client) json(method, path string, in, out any) error {
	var body io.Reader
	ct := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, ct = bytes.NewReader(b), "application/json"
	}
	req, err := c.request(method, path, body, ct)
	if err != nil {
		return err
	}
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// fail prints an error the way every client command does and returns 1.
func fail(stderr io.Writer, err error) int {
	if e, ok := err.(*errs.Error); ok {
		fmt.Fprintf(stderr, "mote: %s (%s)\n", e.Message, e.Code)
	} else {
		fmt.Fprintf(stderr, "mote: %v\n", err)
	}
	return 1
}

// parse parses flags that may come after positional arguments
// (mote deploy NAME FILE --memory 64MiB) and returns the positionals.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
