package httpfn

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
)

// CGIEnv returns the CGI/1.1 variables (RFC 3875) for r, as WAGI passes
// them to a WASI command: the request's meta-variables, HTTP_* for each
// header but Authorization and Proxy-Authorization, and WAGI's
// X_MATCHED_ROUTE, X_RAW_PATH_INFO and X_FULL_URL.
func CGIEnv(r Request) []string {
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		host, port = r.Host, "80"
		if r.TLS != nil {
			port = "443"
		}
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	env := []string{
		"GATEWAY_INTERFACE=CGI/1.1",
		"SERVER_SOFTWARE=mote",
		"SERVER_PROTOCOL=" + r.Proto,
		"SERVER_NAME=" + host,
		"SERVER_PORT=" + port,
		"REQUEST_METHOD=" + r.Method,
		"SCRIPT_NAME=" + r.Prefix,
		"PATH_INFO=" + r.Path,
		"PATH_TRANSLATED=" + r.Path,
		"QUERY_STRING=" + r.URL.RawQuery,
		"REMOTE_ADDR=" + clientIP(r.RemoteAddr),
		"REMOTE_HOST=" + clientIP(r.RemoteAddr),
		"REMOTE_USER=",
		"AUTH_TYPE=",
		"CONTENT_LENGTH=" + strconv.Itoa(len(r.Body)),
		"CONTENT_TYPE=" + r.Header.Get("Content-Type"),
		"X_MATCHED_ROUTE=" + r.Prefix + "/...",
		"X_RAW_PATH_INFO=" + r.Path,
		"X_FULL_URL=" + scheme + "://" + r.Host + r.URL.RequestURI(),
	}
	for k, vs := range r.Header {
		switch k {
		case "Authorization", "Proxy-Authorization", "Content-Type", "Content-Length":
			continue
		}
		name := "HTTP_" + strings.ReplaceAll(strings.ToUpper(k), "-", "_")
		env = append(env, name+"="+strings.Join(vs, ", "))
	}
	if r.Host != "" {
		env = append(env, "HTTP_HOST="+r.Host)
	}
	return env
}

// ParseCGI reads a CGI response (RFC 3875 §6): header lines (CRLF or LF),
// an empty line, the body. Status sets the status (default 200, or 302
// with a Location); the header must name a Content-Type, a Location or a
// Status. Anything else is an errs.FunctionError.
func ParseCGI(out []byte) (*Response, error) {
	end, sep := bytes.Index(out, []byte("\r\n\r\n")), 4
	if i := bytes.Index(out, []byte("\n\n")); i >= 0 && (end < 0 || i < end) {
		end, sep = i, 2
	}
	if end < 0 {
		return nil, bad("WAGI output has no CGI header block (header lines, an empty line, then the body)")
	}
	tr := textproto.NewReader(bufio.NewReader(io.MultiReader(bytes.NewReader(out[:end]), strings.NewReader("\n\n"))))
	mh, err := tr.ReadMIMEHeader()
	if err != nil {
		return nil, bad("WAGI header: %v", err)
	}
	resp := &Response{Status: http.StatusOK, Header: http.Header{}, Body: out[end+sep:]}
	for k, vs := range mh {
		if !validName(k) {
			return nil, bad("header name %q is not a valid HTTP token", k)
		}
		for _, v := range vs {
			if !validValue(v) {
				return nil, bad("header %q: value has a control character", k)
			}
		}
		switch {
		case k == "Status":
			code, _, _ := strings.Cut(strings.TrimSpace(vs[0]), " ")
			n, err := strconv.Atoi(code)
			if err != nil || n < 200 || n > 599 {
				return nil, bad("CGI Status %q is not a status in 200..599", vs[0])
			}
			resp.Status = n
		case framing(k):
		default:
			resp.Header[k] = vs
		}
	}
	if mh.Get("Status") == "" && mh.Get("Location") != "" {
		resp.Status = http.StatusFound
	}
	if mh.Get("Status") == "" && mh.Get("Location") == "" && mh.Get("Content-Type") == "" {
		return nil, bad("WAGI header names no Content-Type, Location or Status")
	}
	return resp, nil
}
