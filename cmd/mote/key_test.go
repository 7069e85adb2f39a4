package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mote-run/mote/internal/auth"
)

// The key and audit commands against a server: keys are created, used
// within their scopes, listed without secrets, revoked, kept across a
// kill -9 and restart; the audit log names who did what.
func TestCLIKeysAndAudit(t *testing.T) {
	reactor := writeModule(t, "../../examples/hello-reactor", true)
	const admin = "a-long-enough-admin-token"
	tokFile := writeFile(t, admin)
	data := t.TempDir()
	s := startServerIn(t, data, "--token-file", tokFile)
	must := func(args ...string) string {
		t.Helper()
		code, out, errOut := s.mote(t, args...)
		if code != 0 {
			t.Fatalf("mote %s: exit %d, %s", strings.Join(args, " "), code, errOut)
		}
		return out
	}
	refused := func(want string, args ...string) {
		t.Helper()
		code, _, errOut := s.mote(t, args...)
		if code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("mote %s: got exit %d, %q; want 1 and %q", strings.Join(args, " "), code, errOut, want)
		}
	}
	invoke := strings.TrimSpace(must("key", "create", "--scope", "invoke:hello", "--scope", "read:b", "--name", "app", "--expires", "720h", "--token", admin))
	deploy := strings.TrimSpace(must("key", "create", "--scope", "deploy", "--name", "ci", "--token", admin))
	if !strings.HasPrefix(invoke, auth.TokenPrefix) || strings.Contains(invoke, "\n") {
		t.Fatalf("key create printed %q, want the token alone", invoke)
	}
	invokeID, deployID := strings.Split(invoke, "_")[1], strings.Split(deploy, "_")[1]

	must("deploy", "hello", reactor, "--token", deploy)
	if out := must("invoke", "hello", "-d", "key", "--token", invoke); !strings.Contains(out, "hello, key") {
		t.Errorf("invoke with the key: got %q", out)
	}
	refused("lacks the scope deploy (forbidden)", "ls", "--token", invoke)
	refused("lacks the scope invoke:hello (forbidden)", "invoke", "hello", "--token", deploy)
	refused("(unauthorized)", "ls")
	refused("(forbidden)", "key", "ls", "--token", deploy)

	out := must("key", "ls", "--token", admin)
	for _, want := range []string{invokeID, deployID, "app", "ci", "invoke:hello,read:b", "deploy"} {
		if !strings.Contains(out, want) {
			t.Errorf("key ls: %q lacks %q", out, want)
		}
	}
	var keys []auth.Key
	if err := json.Unmarshal([]byte(must("key", "ls", "--json", "--token", admin)), &keys); err != nil || len(keys) != 2 || keys[0].Expires.IsZero() || keys[0].LastUsed.IsZero() {
		t.Errorf("key ls --json: got %+v, %v; want 2 keys, the first with its expiry and last use", keys, err)
	}
	for _, tok := range []string{invoke, deploy} {
		if secret := tok[len(auth.TokenPrefix)+13:]; strings.Contains(out, secret) {
			t.Errorf("key ls shows a secret")
		}
	}

	must("key", "revoke", invokeID, "--token", admin)
	refused("(unauthorized)", "invoke", "hello", "--token", invoke)
	refused("(not_found)", "key", "revoke", invokeID, "--token", admin)

	out = strings.Join(strings.Fields(must("audit", "--token", admin)), " ")
	for _, want := range []string{
		"admin token key.create " + invokeID + " 201",
		"admin token key.create " + deployID + " 201",
		"key " + deployID + " (ci) function.deploy hello 201",
		"admin token key.revoke " + invokeID + " 204",
		"admin token key.revoke " + invokeID + " 404",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("audit: %q lacks %q", out, want)
		}
	}

	// Kill -9 and restart on the same data: the deploy key still works,
	// the revoked one still does not.
	s.cmd.Process.Kill()
	<-s.done
	s.done <- nil
	s = startServerIn(t, data, "--token-file", tokFile)
	must("ls", "--token", deploy)
	refused("(unauthorized)", "invoke", "hello", "--token", invoke)
}
