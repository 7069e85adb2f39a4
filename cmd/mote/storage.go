package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
)

// cmdKV is `mote kv get|put|rm|ls|incr BUCKET [KEY] [VALUE]`.
func cmdKV(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kv", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := clientFlags(fs)
	ttl := fs.String("ttl", "", "put: expire the key after this long (e.g. 30s)")
	data := fs.String("d", "", "put: the value, or @FILE (@- for stdin); default: the VALUE argument")
	prefix := fs.String("prefix", "", "ls: only keys with this prefix")
	limit := fs.Int("limit", 1000, "ls: most keys to list")
	delta := fs.Int64("by", 1, "incr: amount to add")
	asJSON := fs.Bool("json", false, "ls: print JSON")
	pos, err := parse(fs, args)
	usage := "usage: mote kv get BUCKET KEY | put BUCKET KEY [VALUE|-d @FILE] [--ttl D] | rm BUCKET KEY | ls BUCKET [--prefix P] | incr BUCKET KEY [--by N]"
	if err != nil || len(pos) < 2 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	verb, bucket := pos[0], pos[1]
	keyPath := func() (string, bool) {
		if len(pos) < 3 {
			return "", false
		}
		return "/v1/kv/" + url.PathEscape(bucket) + "/" + escapeKey(pos[2]), true
	}
	switch verb {
	case "get":
		p, ok := keyPath()
		if !ok {
			break
		}
		return c.stream(http.MethodGet, p, nil, stdout, stderr)
	case "put":
		p, ok := keyPath()
		if !ok {
			break
		}
		body, closeBody, err := valueArg(*data, pos[3:])
		if err != nil {
			return fail(stderr, err)
		}
		defer closeBody()
		if *ttl != "" {
			p += "?ttl=" + url.QueryEscape(*ttl)
		}
		var out struct {
			Version uint64 `json:"version"`
		}
		if err := c.jsonBody(http.MethodPut, p, body, &out); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "version %d\n", out.Version)
		return 0
	case "rm":
		p, ok := keyPath()
		if !ok {
			break
		}
		if err := c.json(http.MethodDelete, p, nil, nil); err != nil {
			return fail(stderr, err)
		}
		return 0
	case "incr":
		p, ok := keyPath()
		if !ok {
			break
		}
		var out struct {
			Value int64 `json:"value"`
		}
		if err := c.json(http.MethodPost, fmt.Sprintf("%s?op=incr&delta=%d", p, *delta), nil, &out); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintln(stdout, out.Value)
		return 0
	case "ls":
		q := url.Values{"prefix": {*prefix}, "limit": {fmt.Sprint(*limit)}}
		var out struct {
			Keys []string `json:"keys"`
			Next string   `json:"next_cursor"`
		}
		if err := c.json(http.MethodGet, "/v1/kv/"+url.PathEscape(bucket)+"?"+q.Encode(), nil, &out); err != nil {
			return fail(stderr, err)
		}
		if *asJSON {
			return printJSON(stdout, stderr, out)
		}
		for _, k := range out.Keys {
			fmt.Fprintln(stdout, k)
		}
		if out.Next != "" {
			fmt.Fprintf(stderr, "(more: --limit or --prefix to see them)\n")
		}
		return 0
	}
	fmt.Fprintln(stderr, usage)
	return 2
}

// cmdObj is `mote obj put|get|head|rm|ls BUCKET [KEY] [FILE]`, streamed.
func cmdObj(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("obj", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := clientFlags(fs)
	prefix := fs.String("prefix", "", "ls: only keys with this prefix")
	out := fs.String("o", "", "get: write to this file instead of stdout")
	asJSON := fs.Bool("json", false, "ls: print JSON")
	pos, err := parse(fs, args)
	usage := "usage: mote obj put BUCKET KEY FILE|- | get BUCKET KEY [-o FILE] | head BUCKET KEY | rm BUCKET KEY | ls BUCKET [--prefix P]"
	if err != nil || len(pos) < 2 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	verb, bucket := pos[0], pos[1]
	if verb == "ls" {
		var res struct {
			Objects []struct {
				Key  string `json:"key"`
				Size int64  `json:"size"`
				Sum  string `json:"sha256"`
			} `json:"objects"`
		}
		if err := c.json(http.MethodGet, "/v1/objects/"+url.PathEscape(bucket)+"?prefix="+url.QueryEscape(*prefix), nil, &res); err != nil {
			return fail(stderr, err)
		}
		if *asJSON {
			return printJSON(stdout, stderr, res.Objects)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		for _, o := range res.Objects {
			fmt.Fprintf(tw, "%s\t%d\t%s\n", o.Key, o.Size, o.Sum)
		}
		tw.Flush()
		return 0
	}
	if len(pos) < 3 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	p := "/v1/objects/" + url.PathEscape(bucket) + "/" + escapeKey(pos[2])
	switch verb {
	case "put":
		if len(pos) != 4 {
			break
		}
		var body io.Reader = os.Stdin
		if pos[3] != "-" {
			f, err := os.Open(pos[3])
			if err != nil {
				return fail(stderr, err)
			}
			defer f.Close()
			body = f
		}
		var info struct {
			Size int64  `json:"size"`
			Sum  string `json:"sha256"`
		}
		if err := c.jsonBody(http.MethodPut, p, body, &info); err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "stored %d bytes, sha256 %s\n", info.Size, info.Sum)
		return 0
	case "get":
		w := stdout
		if *out != "" {
			f, err := os.Create(*out)
			if err != nil {
				return fail(stderr, err)
			}
			defer f.Close()
			w = f
		}
		return c.stream(http.MethodGet, p, nil, w, stderr)
	case "head":
		req, err := c.request(http.MethodHead, p, nil, "")
		if err != nil {
			return fail(stderr, err)
		}
		resp, err := c.do(req)
		if err != nil {
			return fail(stderr, err)
		}
		resp.Body.Close()
		fmt.Fprintf(stdout, "size %s sha256 %s type %s modified %s\n", resp.Header.Get("Content-Length"),
			resp.Header.Get("X-Mote-Sha256"), resp.Header.Get("Content-Type"), resp.Header.Get("Last-Modified"))
		return 0
	case "rm":
		if err := c.json(http.MethodDelete, p, nil, nil); err != nil {
			return fail(stderr, err)
		}
		return 0
	}
	fmt.Fprintln(stderr, usage)
	return 2
}

// escapeKey escapes each '/'-separated segment of a key.
func escapeKey(k string) string {
	parts := strings.Split(k, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// valueArg returns the value to put: -d DATA / -d @FILE, else the first
// positional argument.
func valueArg(data string, rest []string) (io.Reader, func(), error) {
	nothing := func() {}
	if data == "" && len(rest) > 0 {
		data = rest[0]
	}
	f, ok := strings.CutPrefix(data, "@")
	if !ok {
		return strings.NewReader(data), nothing, nil
	}
	if f == "-" {
		return os.Stdin, nothing, nil
	}
	fh, err := os.Open(f)
	if err != nil {
		return nil, nothing, err
	}
	return fh, func() { fh.Close() }, nil
}

// stream copies a response body to w.
func (c *client) stream(method, path string, body io.Reader, w, stderr io.Writer) int {
	req, err := c.request(method, path, body, "")
	if err != nil {
		return fail(stderr, err)
	}
	resp, err := c.do(req)
	if err != nil {
		return fail(stderr, err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fail(stderr, err)
	}
	return 0
}

// jsonBody sends a raw body and decodes a JSON response.
func (c *client) jsonBody(method, path string, body io.Reader, out any) error {
	req, err := c.request(method, path, body, "application/octet-stream")
	if err != nil {
		return err
	}
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}
