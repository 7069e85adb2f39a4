// Package httpfn turns an HTTP request into what an HTTP function reads and
// what it answers back into an HTTP response, in the two conventions Mote
// speaks: the AWS Lambda function URL / API Gateway HTTP API payload format
// 2.0 (Event, ParseResponse), which every process function and SDK uses,
// and WAGI, CGI for WASI commands (CGIEnv, ParseCGI).
//
// Everything a function writes crosses a trust boundary here: a response
// is checked (status, header names and values, base64) before any byte of
// it reaches the client, and a bad one is an errs.FunctionError, which the
// gateway answers 502.
package httpfn

import (
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// Event is the payload format 2.0 event, as
// github.com/aws/aws-lambda-go/events.LambdaFunctionURLRequest and
// APIGatewayV2HTTPRequest read it.
type Event struct {
	Version               string            `json:"version"`
	RouteKey              string            `json:"routeKey"`
	RawPath               string            `json:"rawPath"`
	RawQueryString        string            `json:"rawQueryString"`
	Cookies               []string          `json:"cookies,omitempty"`
	Headers               map[string]string `json:"headers"`
	QueryStringParameters map[string]string `json:"queryStringParameters,omitempty"`
	RequestContext        RequestContext    `json:"requestContext"`
	Body                  string            `json:"body,omitempty"`
	IsBase64Encoded       bool              `json:"isBase64Encoded"`
}

// RequestContext is the event's requestContext.
type RequestContext struct {
	AccountID    string      `json:"accountId"`
	APIID        string      `json:"apiId"`
	DomainName   string      `json:"domainName"`
	DomainPrefix string      `json:"domainPrefix"`
	RequestID    string      `json:"requestId"`
	RouteKey     string      `json:"routeKey"`
	Stage        string      `json:"stage"`
	Time         string      `json:"time"`
	TimeEpoch    int64       `json:"timeEpoch"`
	HTTP         HTTPContext `json:"http"`
}

// HTTPContext is the event's requestContext.http.
type HTTPContext struct {
	Method    string `json:"method"`
	Path      string `json:"path"`
	Protocol  string `json:"protocol"`
	SourceIP  string `json:"sourceIp"`
	UserAgent string `json:"userAgent"`
}

// Request is what the gateway knows of one request to an HTTP function.
type Request struct {
	*http.Request
	// Path is the path after the route's prefix, starting with "/": what
	// the function sees as rawPath.
	Path string
	// Prefix is the route's prefix (the part of the URL path before Path),
	// passed as X-Forwarded-Prefix when not empty.
	Prefix string
	// Body is the request body, read whole.
	Body []byte
	// ID is the request id (requestContext.requestId).
	ID string
	// Now is the time the request arrived.
	Now time.Time
}

// BuildEvent returns the payload format 2.0 event for r as JSON. Header
// names are lowercased and repeated values joined with commas, as Lambda
// does; cookies go in cookies, not in headers; a body that is not valid
// UTF-8 is base64-encoded.
func BuildEvent(r Request) ([]byte, error) {
	ev := Event{
		Version:        "2.0",
		RouteKey:       "$default",
		RawPath:        r.Path,
		RawQueryString: r.URL.RawQuery,
		Headers:        make(map[string]string, len(r.Header)+2),
		RequestContext: RequestContext{
			AccountID:    "mote",
			APIID:        "mote",
			DomainName:   r.Host,
			DomainPrefix: domainPrefix(r.Host),
			RequestID:    r.ID,
			RouteKey:     "$default",
			Stage:        "$default",
			Time:         r.Now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch:    r.Now.UnixMilli(),
			HTTP: HTTPContext{
				Method:    r.Method,
				Path:      r.Path,
				Protocol:  r.Proto,
				SourceIP:  clientIP(r.RemoteAddr),
				UserAgent: r.UserAgent(),
			},
		},
	}
	for k, vs := range r.Header {
		lk := strings.ToLower(k)
		if lk == "cookie" {
			for _, v := range vs {
				for c := range strings.SplitSeq(v, ";") {
					if c = strings.TrimSpace(c); c != "" {
						ev.Cookies = append(ev.Cookies, c)
					}
				}
			}
			continue
		}
		ev.Headers[lk] = strings.Join(vs, ",")
	}
	if r.Host != "" {
		ev.Headers["host"] = r.Host
	}
	if r.Prefix != "" {
		ev.Headers["x-forwarded-prefix"] = r.Prefix
	}
	if ip := clientIP(r.RemoteAddr); ip != "" {
		if prior := ev.Headers["x-forwarded-for"]; prior != "" {
			ev.Headers["x-forwarded-for"] = prior + ", " + ip
		} else {
			ev.Headers["x-forwarded-for"] = ip
		}
	}
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	ev.Headers["x-forwarded-proto"] = proto
	if q := r.URL.Query(); len(q) > 0 {
		ev.QueryStringParameters = make(map[string]string, len(q))
		for k, vs := range q {
			ev.QueryStringParameters[k] = strings.Join(vs, ",")
		}
	}
	if len(r.Body) > 0 {
		if utf8.Valid(r.Body) {
			ev.Body = string(r.Body)
		} else {
			ev.Body = base64.StdEncoding.EncodeToString(r.Body)
			ev.IsBase64Encoded = true
		}
	}
	return json.Marshal(&ev)
}

// clientIP is the address part of a RemoteAddr.
func clientIP(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// domainPrefix is the first label of a host name, as Lambda's
// requestContext.domainPrefix.
func domainPrefix(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	p, _, _ := strings.Cut(host, ".")
	return p
}
