package api

import (
	"net/http/httptest"
	"testing"
)

// The invocation fast path takes only the paths the mux would route to an
// invocation without a redirect; everything else goes to the mux.
func TestFnName(t *testing.T) {
	for _, tc := range []struct {
		path, name string
		ok         bool
	}{
		{"/fn/hello", "hello", true},
		{"/fn/hello/", "hello", true},
		{"/fn/hello/a/b", "hello", true},
		{"/fn/hello?x=1", "hello", true},
		{"/fn/", "", false},
		{"/fn", "", false},
		{"/fnx/hello", "", false},
		{"/fn//hello", "", false},
		{"/fn/hello//a", "", false},
		{"/fn/./hello", "", false},
		{"/fn/hello/../other", "", false},
		{"/fn/a%2Fb", "", false},
		{"/v1/functions/hello", "", false},
	} {
		r := httptest.NewRequest("POST", tc.path, nil)
		name, ok := fnName(r)
		if name != tc.name || ok != tc.ok {
			t.Errorf("fnName(%q) = %q, %v; want %q, %v", tc.path, name, ok, tc.name, tc.ok)
		}
	}
}
