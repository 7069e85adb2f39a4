package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
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
	base   string
	token  string
	caCert string // a PEM file of the CA to trust for an https:// server
	http   *http.Client
	tlsErr error // set once the CA is loaded, when it cannot be
	tlsSet bool
}

// clientFlags adds --server, --token and --ca-cert to fs.
func clientFlags(fs *flag.FlagSet) *client {
	c := &client{http: &http.Client{}}
	server := os.Getenv("MOTE_SERVER")
	if server == "" {
		server = "http://127.0.0.1:8080"
	}
	fs.StringVar(&c.base, "server", server, "server URL, http:// or https:// (env MOTE_SERVER)")
	fs.StringVar(&c.token, "token", os.Getenv("MOTE_TOKEN"), "bearer token: an API key or the admin token (env MOTE_TOKEN)")
	fs.StringVar(&c.caCert, "ca-cert", os.Getenv("MOTE_CA_CERT"), "PEM file of the CA (or self-signed certificate) to trust for an https:// server (env MOTE_CA_CERT)")
	return c
}

// setupTLS makes the client trust --ca-cert, besides the system's CAs,
// once the flags are parsed.
func (c *client) setupTLS() error {
	if c.tlsSet {
		return c.tlsErr
	}
	c.tlsSet = true
	if c.caCert == "" {
		return nil
	}
	pem, err := os.ReadFile(c.caCert)
	if err != nil {
		c.tlsErr = fmt.Errorf("reading the CA certificate: %w", err)
		return c.tlsErr
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		c.tlsErr = fmt.Errorf("%s holds no PEM certificate", c.caCert)
		return c.tlsErr
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	c.http.Transport = t
	return nil
}

func (c *client) request(method, path string, body io.Reader, contentType string) (*http.Request, error) {
	if err := c.setupTLS(); err != nil {
		return nil, err
	}
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
// (mote deploy NAME FILE --memory 64MiB) and returns the positionals. A
// flag error names the flag and the nearest one defined (see flagError).
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	out := fs.Output()
	fs.SetOutput(io.Discard)
	defer fs.SetOutput(out)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(out)
				fmt.Fprintf(out, "Usage of mote %s:\n", fs.Name())
				fs.PrintDefaults()
			} else {
				fmt.Fprintf(out, "mote %s: %v\n", fs.Name(), flagError(fs, err))
			}
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
