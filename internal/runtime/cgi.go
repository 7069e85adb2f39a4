package runtime

import (
	"encoding/binary"
	"errors"
)

// An HTTP function served by WAGI (a WASI command given CGI variables in
// its environment and the request body on stdin) gets, as its event's
// payload, both: EncodeCGI frames them so that the payload stays one byte
// string through the flow engine (retries and the journal included), and
// the wasm runtime splits it again with DecodeCGI.

// EncodeCGI frames CGI variables ("NAME=value") and a body as a payload.
func EncodeCGI(env []string, body []byte) []byte {
	n := binary.MaxVarintLen64 * (len(env) + 1)
	for _, e := range env {
		n += len(e)
	}
	b := make([]byte, 0, n+len(body))
	b = binary.AppendUvarint(b, uint64(len(env)))
	for _, e := range env {
		b = binary.AppendUvarint(b, uint64(len(e)))
		b = append(b, e...)
	}
	return append(b, body...)
}

// errCGIFrame is a payload EncodeCGI did not make.
var errCGIFrame = errors.New("runtime: payload is not a CGI frame")

// DecodeCGI splits a payload EncodeCGI made. body aliases p.
func DecodeCGI(p []byte) (env []string, body []byte, err error) {
	count, k := binary.Uvarint(p)
	if k <= 0 || count > uint64(len(p)) {
		return nil, nil, errCGIFrame
	}
	p = p[k:]
	env = make([]string, 0, count)
	for range count {
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return nil, nil, errCGIFrame
		}
		env = append(env, string(p[k:k+int(n)]))
		p = p[k+int(n):]
	}
	return env, p, nil
}
