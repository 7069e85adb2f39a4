package registry

import (
	"encoding/json"

	"github.com/mote-run/mote/internal/errs"
)

// HTTPMode says whether a function is an HTTP function and in which
// convention it reads requests: "" (a plain function: the request body is
// its event), HTTPv2 (the Lambda payload format 2.0 event and response;
// every process function and SDK) or HTTPWAGI (a WASI command given CGI
// variables and the body on stdin). In JSON, true means HTTPv2.
type HTTPMode string

// The HTTP modes.
const (
	HTTPOff  HTTPMode = ""
	HTTPv2   HTTPMode = "v2"
	HTTPWAGI HTTPMode = "wagi"
)

// UnmarshalJSON accepts true, false, "v2" and "wagi".
func (m *HTTPMode) UnmarshalJSON(b []byte) error {
	var on bool
	if err := json.Unmarshal(b, &on); err == nil {
		*m = HTTPOff
		if on {
			*m = HTTPv2
		}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errs.E(errs.BadRequest, `config: http is true, false, "v2" or "wagi"`)
	}
	*m = HTTPMode(s)
	return nil
}

// MarshalJSON writes HTTPv2 as true.
func (m HTTPMode) MarshalJSON() ([]byte, error) {
	switch m {
	case HTTPv2:
		return []byte("true"), nil
	case HTTPOff:
		return []byte("false"), nil
	}
	return json.Marshal(string(m))
}

func (m HTTPMode) validate(c Config) error {
	switch m {
	case HTTPOff, HTTPv2:
		return nil
	case HTTPWAGI:
		if c.Runtime != "wasm" {
			return errs.E(errs.BadRequest, `config: http "wagi" is for wasm (WASI command) functions; a process function uses http: true`)
		}
		return nil
	}
	return errs.E(errs.BadRequest, `config: http %q: want true, false, "v2" or "wagi"`, string(m))
}
