package mote

import (
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// A reader and writer of the payload format 2.0 event and response, by
// hand: encoding/json's reflection was two thirds of an HTTP function's
// time in a wasm reactor (BenchmarkServeEvent). The reader takes any valid
// JSON, reads the fields ServeEvent needs and skips the rest; what it
// cannot read is an error, never a guess.

var errJSON = errors.New("malformed JSON")

type jsonReader struct {
	b []byte
	i int
}

func (r *jsonReader) ws() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (r *jsonReader) peek() byte {
	r.ws()
	if r.i < len(r.b) {
		return r.b[r.i]
	}
	return 0
}

func (r *jsonReader) expect(c byte) error {
	if r.peek() != c {
		return errJSON
	}
	r.i++
	return nil
}

// object calls field for each key of an object; field must consume the
// value.
func (r *jsonReader) object(field func(key string) error) error {
	if err := r.expect('{'); err != nil {
		return err
	}
	if r.peek() == '}' {
		r.i++
		return nil
	}
	for {
		k, err := r.str()
		if err != nil {
			return err
		}
		if err := r.expect(':'); err != nil {
			return err
		}
		if err := field(k); err != nil {
			return err
		}
		switch r.peek() {
		case ',':
			r.i++
		case '}':
			r.i++
			return nil
		default:
			return errJSON
		}
	}
}

// str reads a string; null reads as "".
func (r *jsonReader) str() (string, error) {
	c := r.peek()
	if c == 'n' {
		return "", r.literal("null")
	}
	if c != '"' {
		return "", errJSON
	}
	r.i++
	start := r.i
	for r.i < len(r.b) { // the common case: no escapes
		switch c := r.b[r.i]; {
		case c == '"':
			s := string(r.b[start:r.i])
			r.i++
			if !utf8.ValidString(s) {
				return toValidUTF8(s), nil
			}
			return s, nil
		case c == '\\':
			return r.escaped(start)
		case c < 0x20:
			return "", errJSON
		}
		r.i++
	}
	return "", errJSON
}

// escaped finishes a string that has escapes, from start.
func (r *jsonReader) escaped(start int) (string, error) {
	buf := append([]byte(nil), r.b[start:r.i]...)
	for r.i < len(r.b) {
		c := r.b[r.i]
		switch {
		case c == '"':
			r.i++
			return toValidUTF8(string(buf)), nil
		case c < 0x20:
			return "", errJSON
		case c != '\\':
			buf = append(buf, c)
			r.i++
			continue
		}
		if r.i+1 >= len(r.b) {
			return "", errJSON
		}
		e := r.b[r.i+1]
		r.i += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			ru, ok := r.hex4()
			if !ok {
				return "", errJSON
			}
			if utf16.IsSurrogate(ru) {
				if r.i+1 < len(r.b) && r.b[r.i] == '\\' && r.b[r.i+1] == 'u' {
					save := r.i
					r.i += 2
					if lo, ok := r.hex4(); ok {
						if dec := utf16.DecodeRune(ru, lo); dec != utf8.RuneError {
							buf = utf8.AppendRune(buf, dec)
							continue
						}
					}
					r.i = save
				}
				ru = utf8.RuneError
			}
			buf = utf8.AppendRune(buf, ru)
		default:
			return "", errJSON
		}
	}
	return "", errJSON
}

func (r *jsonReader) hex4() (rune, bool) {
	if r.i+4 > len(r.b) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(r.b[r.i:r.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	r.i += 4
	return rune(n), true
}

func (r *jsonReader) literal(lit string) error {
	r.ws()
	if len(r.b)-r.i < len(lit) || string(r.b[r.i:r.i+len(lit)]) != lit {
		return errJSON
	}
	r.i += len(lit)
	return nil
}

func (r *jsonReader) boolean() (bool, error) {
	switch r.peek() {
	case 't':
		return true, r.literal("true")
	case 'f':
		return false, r.literal("false")
	case 'n':
		return false, r.literal("null")
	}
	return false, errJSON
}

// strMap reads an object of strings (null: none).
func (r *jsonReader) strMap(set func(k, v string)) error {
	if r.peek() == 'n' {
		return r.literal("null")
	}
	return r.object(func(k string) error {
		v, err := r.str()
		if err == nil {
			set(k, v)
		}
		return err
	})
}

// strList reads an array of strings (null: none).
func (r *jsonReader) strList() ([]string, error) {
	switch r.peek() {
	case 'n':
		return nil, r.literal("null")
	case '[':
		r.i++
	default:
		return nil, errJSON
	}
	var out []string
	if r.peek() == ']' {
		r.i++
		return out, nil
	}
	for {
		s, err := r.str()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
		switch r.peek() {
		case ',':
			r.i++
		case ']':
			r.i++
			return out, nil
		default:
			return nil, errJSON
		}
	}
}

// skip consumes any value.
func (r *jsonReader) skip() error {
	switch c := r.peek(); {
	case c == '"':
		_, err := r.str()
		return err
	case c == '{':
		return r.object(func(string) error { return r.skip() })
	case c == '[':
		r.i++
		if r.peek() == ']' {
			r.i++
			return nil
		}
		for {
			if err := r.skip(); err != nil {
				return err
			}
			switch r.peek() {
			case ',':
				r.i++
			case ']':
				r.i++
				return nil
			default:
				return errJSON
			}
		}
	case c == 't':
		return r.literal("true")
	case c == 'f':
		return r.literal("false")
	case c == 'n':
		return r.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return r.number()
	}
	return errJSON
}

// number consumes a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (r *jsonReader) number() error {
	digits := func() int {
		n := 0
		for r.i < len(r.b) && r.b[r.i] >= '0' && r.b[r.i] <= '9' {
			r.i++
			n++
		}
		return n
	}
	if r.i < len(r.b) && r.b[r.i] == '-' {
		r.i++
	}
	switch {
	case r.i < len(r.b) && r.b[r.i] == '0':
		r.i++
	case digits() == 0:
		return errJSON
	}
	if r.i < len(r.b) && r.b[r.i] == '.' {
		r.i++
		if digits() == 0 {
			return errJSON
		}
	}
	if r.i < len(r.b) && (r.b[r.i] == 'e' || r.b[r.i] == 'E') {
		r.i++
		if r.i < len(r.b) && (r.b[r.i] == '+' || r.b[r.i] == '-') {
			r.i++
		}
		if digits() == 0 {
			return errJSON
		}
	}
	return nil
}

// parseEvent reads a payload format 2.0 event.
func parseEvent(b []byte) (*v2Event, error) {
	ev := &v2Event{Headers: map[string]string{}}
	r := &jsonReader{b: b}
	err := r.object(func(k string) error {
		var err error
		switch k {
		case "rawPath":
			ev.RawPath, err = r.str()
		case "rawQueryString":
			ev.RawQueryString, err = r.str()
		case "cookies":
			ev.Cookies, err = r.strList()
		case "headers":
			err = r.strMap(func(k, v string) { ev.Headers[k] = v })
		case "body":
			ev.Body, err = r.str()
		case "isBase64Encoded":
			ev.IsBase64Encoded, err = r.boolean()
		case "requestContext":
			err = r.object(func(k string) error {
				switch k {
				case "domainName":
					ev.RequestContext.DomainName, err = r.str()
					return err
				case "http":
					return r.object(func(k string) error {
						var err error
						h := &ev.RequestContext.HTTP
						switch k {
						case "method":
							h.Method, err = r.str()
						case "path":
							h.Path, err = r.str()
						case "protocol":
							h.Protocol, err = r.str()
						case "sourceIp":
							h.SourceIP, err = r.str()
						default:
							err = r.skip()
						}
						return err
					})
				}
				return r.skip()
			})
		default:
			err = r.skip()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if r.ws(); r.i != len(r.b) {
		return nil, errJSON
	}
	return ev, nil
}

// appendString appends s as a JSON string. Invalid UTF-8 must not reach
// it (encode base64-encodes a body that is not valid UTF-8).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			const hex = "0123456789abcdef"
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func toValidUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	out := make([]rune, 0, len(s))
	for _, r := range s {
		out = append(out, r)
	}
	return string(out)
}
