package httpfn

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/mote-run/mote/internal/errs"
)

// Response is an HTTP function's answer, checked: a status net/http can
// write as final, header names that are tokens and values free of control
// characters, a decoded body.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// v2Response is the payload format 2.0 response. Fields are raw so that a
// wrong type is reported as the function's error, by name.
type v2Response struct {
	StatusCode      json.RawMessage            `json:"statusCode"`
	Headers         map[string]json.RawMessage `json:"headers"`
	Cookies         []json.RawMessage          `json:"cookies"`
	Body            json.RawMessage            `json:"body"`
	IsBase64Encoded json.RawMessage            `json:"isBase64Encoded"`
}

// streamingContentType is what aws-lambda-go's
// LambdaFunctionURLStreamingResponse declares: a JSON prelude (status,
// headers, cookies), eight NUL bytes, then the body.
const streamingContentType = "application/vnd.awslambda.http-integration-response"

// preludeEnd separates a streamed response's prelude from its body.
var preludeEnd = []byte{0, 0, 0, 0, 0, 0, 0, 0}

// ParseResponse reads a function's output as Lambda's function URLs do
// with payload format 2.0: a JSON object with a statusCode is a response
// (statusCode, headers, cookies, body, isBase64Encoded); any other valid
// JSON is a 200 application/json whose body is that JSON (a JSON string:
// the string itself); output that is not JSON is a 200 whose body is the
// output, its type sniffed. A response-streaming function's output (a
// prelude, eight NULs, the body) is read too. A response that cannot be
// written faithfully is an errs.FunctionError saying why.
func ParseResponse(out []byte) (*Response, error) {
	if i := bytes.Index(out, preludeEnd); i > 0 && out[0] == '{' && json.Valid(out[:i]) {
		return parseStreamed(out[:i], out[i+len(preludeEnd):])
	}
	trimmed := bytes.TrimSpace(out)
	if len(trimmed) == 0 {
		return &Response{Status: http.StatusOK, Header: http.Header{}}, nil
	}
	if !json.Valid(trimmed) {
		return &Response{Status: http.StatusOK, Header: http.Header{}, Body: out}, nil
	}
	json200 := func(body []byte) *Response {
		return &Response{Status: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}}, Body: body}
	}
	switch trimmed[0] {
	case '"':
		var s string
		if err := json.Unmarshal(trimmed, &s); err != nil {
			return nil, bad("%v", err)
		}
		return json200([]byte(s)), nil
	case '{':
	default:
		return json200(trimmed), nil
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &keys); err != nil {
		return nil, bad("%v", err)
	}
	if _, ok := keys["statusCode"]; !ok {
		return json200(trimmed), nil
	}
	var v v2Response
	if err := json.Unmarshal(trimmed, &v); err != nil {
		return nil, bad("%v", err)
	}
	resp, err := v.head()
	if err != nil {
		return nil, err
	}
	var b64 bool
	if len(v.IsBase64Encoded) > 0 && string(v.IsBase64Encoded) != "null" {
		if err := json.Unmarshal(v.IsBase64Encoded, &b64); err != nil {
			return nil, bad("isBase64Encoded is not a boolean")
		}
	}
	if len(v.Body) > 0 && string(v.Body) != "null" {
		var body string
		if err := json.Unmarshal(v.Body, &body); err != nil {
			return nil, bad("body is not a string")
		}
		if b64 {
			b, err := base64.StdEncoding.DecodeString(body)
			if err != nil {
				return nil, bad("body is not valid base64 (isBase64Encoded is true): %v", err)
			}
			resp.Body = b
		} else {
			resp.Body = []byte(body)
		}
	}
	if resp.Header.Get("Content-Type") == "" && len(resp.Body) > 0 {
		// Lambda's default for a response that names no type.
		resp.Header.Set("Content-Type", "application/json")
	}
	return resp, nil
}

// PreludeEnd separates a streamed response's prelude from its body.
var PreludeEnd = preludeEnd

// ParsePrelude reads and checks a streamed response's prelude (status,
// headers, cookies), for a response whose body is still to come.
func ParsePrelude(prelude []byte) (*Response, error) { return parseStreamed(prelude, nil) }

// parseStreamed reads a response-streaming function's prelude and body.
func parseStreamed(prelude, body []byte) (*Response, error) {
	var v v2Response
	if err := json.Unmarshal(prelude, &v); err != nil {
		return nil, bad("streamed response prelude: %v", err)
	}
	if len(v.StatusCode) == 0 {
		v.StatusCode = json.RawMessage("200")
	}
	resp, err := v.head()
	if err != nil {
		return nil, err
	}
	resp.Body = body
	return resp, nil
}

// head checks and returns the status, headers and cookies.
func (v *v2Response) head() (*Response, error) {
	var status int
	if err := json.Unmarshal(v.StatusCode, &status); err != nil {
		// Lambda accepts a numeric string too.
		var s string
		if json.Unmarshal(v.StatusCode, &s) != nil {
			return nil, bad("statusCode %s is not a number", v.StatusCode)
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, bad("statusCode %q is not a number", s)
		}
		status = n
	}
	if status < 200 || status > 599 {
		return nil, bad("statusCode %d is out of range 200..599", status)
	}
	resp := &Response{Status: status, Header: make(http.Header, len(v.Headers)+1)}
	for k, raw := range v.Headers {
		var val string
		if err := json.Unmarshal(raw, &val); err != nil {
			return nil, bad("header %q: value is not a string", k)
		}
		if !validName(k) {
			return nil, bad("header name %q is not a valid HTTP token", k)
		}
		if !validValue(val) {
			return nil, bad("header %q: value has a control character (CR, LF or NUL)", k)
		}
		if framing(k) {
			continue // the gateway frames the response itself
		}
		resp.Header.Add(k, val)
	}
	for _, raw := range v.Cookies {
		var c string
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, bad("a cookie is not a string")
		}
		if !validValue(c) {
			return nil, bad("cookie %q has a control character (CR, LF or NUL)", c)
		}
		resp.Header.Add("Set-Cookie", c)
	}
	return resp, nil
}

// Write writes resp to w.
func (resp *Response) Write(w http.ResponseWriter) error {
	h := w.Header()
	for k, vs := range resp.Header {
		h[http.CanonicalHeaderKey(k)] = append(h[http.CanonicalHeaderKey(k)], vs...)
	}
	if _, ok := h["Content-Type"]; !ok && len(resp.Body) > 0 {
		h.Set("Content-Type", http.DetectContentType(resp.Body))
	}
	w.WriteHeader(resp.Status)
	_, err := w.Write(resp.Body)
	return err
}

// framing reports whether a header is about the connection or the
// message's framing, which the gateway sets and a function may not.
func framing(name string) bool {
	switch http.CanonicalHeaderKey(name) {
	case "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive",
		"Upgrade", "Trailer", "Te", "Proxy-Connection":
		return true
	}
	return false
}

// validName reports whether s is an HTTP token (RFC 9110 §5.6.2).
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		switch c {
		case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
			continue
		}
		return false
	}
	return true
}

// validValue reports whether s can be a header field value: no control
// characters but horizontal tab (no CR or LF, which would split the
// response).
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func bad(format string, args ...any) error {
	return errs.E(errs.FunctionError, "invalid HTTP response from the function: "+format, args...)
}
