package system_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/system"
)

// deployGuest deploys the flow guest as fn with the given invoke grants.
func deployGuest(t *testing.T, s *system.System, fn string, invoke ...string) {
	t.Helper()
	cfg := registry.Config{Permissions: registry.Permissions{Invoke: invoke}}
	if _, err := s.Deploy(context.Background(), fn, cfg, bytes.NewReader(guestWasm)); err != nil {
		t.Fatal(err)
	}
}

// TestInvokeGrants: a function may invoke, start or map over only the
// functions its permissions.invoke lists, by name or pattern; every other
// call fails with forbidden, naming the caller and the callee. Fails
// without the fix (every call was allowed).
func TestInvokeGrants(t *testing.T) {
	s := withGuest(t, registry.Config{}, "img-resize", "store")
	deployGuest(t, s, "none")
	deployGuest(t, s, "exact", "store")
	deployGuest(t, s, "pattern", "img-*")
	deployGuest(t, s, "all", "*")
	for _, tc := range []struct {
		caller, event, want string // want "": forbidden
	}{
		{"none", "call:store:echo:x", ""},
		{"none", "asyncto:store:echo:x", ""},
		{"none", "mapto:store:2", ""},
		{"exact", "call:store:echo:x", "x"},
		{"exact", "asyncto:store:echo:x", "x"},
		{"exact", "mapto:store:2", "0,1"},
		{"exact", "call:img-resize:echo:x", ""},
		{"exact", "mapto:img-resize:2", ""},
		{"pattern", "call:img-resize:echo:x", "x"},
		{"pattern", "asyncto:img-resize:echo:x", "x"},
		{"pattern", "mapto:img-resize:2", "0,1"},
		{"pattern", "call:store:echo:x", ""},
		{"pattern", "asyncto:store:echo:x", ""},
		{"all", "mapto:store:3", "0,1,2"},
		{"all", "call:img-resize:echo:x", "x"},
	} {
		out := call(t, s, tc.caller, tc.event)
		callee := strings.Split(tc.event, ":")[1]
		if tc.want != "" {
			if out.Err != nil || string(out.Output) != tc.want {
				t.Errorf("%s %s: got %q, %v; want %q", tc.caller, tc.event, out.Output, out.Err, tc.want)
			}
			continue
		}
		// The guest returns the host call's error as its own, so the
		// code it saw leads the message.
		msg := errs.MessageOf(out.Err)
		if !strings.HasPrefix(msg, "forbidden: ") {
			t.Errorf("%s %s: got %q, %v; want the guest to see forbidden", tc.caller, tc.event, out.Output, out.Err)
			continue
		}
		if !strings.Contains(msg, `"`+tc.caller+`"`) || !strings.Contains(msg, `"`+callee+`"`) || !strings.Contains(msg, "permissions.invoke") {
			t.Errorf("%s %s: message %q does not name the caller, the callee and the grant", tc.caller, tc.event, msg)
		}
	}
}

// TestInvokeGrantRemovedByRedeploy: a redeploy without the grant refuses
// the next call, with no restart; one that adds it back allows it again.
func TestInvokeGrantRemovedByRedeploy(t *testing.T) {
	s := withGuest(t, registry.Config{}, "store")
	deployGuest(t, s, "caller", "store")
	if out := call(t, s, "caller", "call:store:echo:x"); out.Err != nil {
		t.Fatalf("granted call: %v", out.Err)
	}
	deployGuest(t, s, "caller", "other")
	for _, ev := range []string{"call:store:echo:x", "asyncto:store:echo:x", "mapto:store:1"} {
		if out := call(t, s, "caller", ev); !strings.HasPrefix(errs.MessageOf(out.Err), "forbidden: ") {
			t.Errorf("after the redeploy without the grant, %s: got %q, %v; want forbidden", ev, out.Output, out.Err)
		}
	}
	deployGuest(t, s, "caller", "store")
	if out := call(t, s, "caller", "call:store:echo:x"); out.Err != nil {
		t.Errorf("after the grant came back: %v", out.Err)
	}
}

// TestInvokeGrantPatternValidated: a malformed pattern fails the deploy.
func TestInvokeGrantPatternValidated(t *testing.T) {
	s := withGuest(t, registry.Config{})
	for _, pat := range []string{"", "a*b", "**"} {
		cfg := registry.Config{Permissions: registry.Permissions{Invoke: []string{pat}}}
		_, err := s.Deploy(context.Background(), "bad", cfg, bytes.NewReader(guestWasm))
		if errs.CodeOf(err) != errs.BadRequest {
			t.Errorf("invoke pattern %q: got %v, want bad_request", pat, err)
		}
	}
}
