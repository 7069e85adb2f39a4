package system_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/logs"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/system"
)

// TestSecretsReachOnlyGrantedFunctions: a function sees a secret as an
// environment variable only if its config grants it (under its own name
// or the env the grant gives); nothing that describes the function holds
// the value.
func TestSecretsReachOnlyGrantedFunctions(t *testing.T) {
	s := withGuest(t, registry.Config{})
	ctx := context.Background()
	const value = "s3cr3t-value-for-the-test"
	if _, err := s.SetSecret(ctx, "DB_PASSWORD", []byte(value)); err != nil {
		t.Fatal(err)
	}
	granted := registry.Config{Secrets: []registry.SecretGrant{{Name: "DB_PASSWORD"}, {Name: "DB_PASSWORD", Env: "PGPASSWORD"}}}
	if _, err := s.Deploy(ctx, "granted", granted, bytes.NewReader(guestWasm)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ fn, event, want string }{
		{"granted", "env:DB_PASSWORD", value},
		{"granted", "env:PGPASSWORD", value},
		{"g", "env:DB_PASSWORD", "<unset>"},
	} {
		if out := call(t, s, tc.fn, tc.event); out.Err != nil || string(out.Output) != tc.want {
			t.Errorf("%s %s: got %q, %v; want %q", tc.fn, tc.event, out.Output, out.Err, tc.want)
		}
	}
	f, err := s.Describe("granted")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(f)
	if strings.Contains(string(b), value) || !strings.Contains(string(b), `"secrets":["DB_PASSWORD",{"name":"DB_PASSWORD","env":"PGPASSWORD"}]`) {
		t.Errorf("Describe: want the grants and never the value, got %s", b)
	}
	list, err := s.Secrets()
	if err != nil || len(list) != 1 || strings.Join(list[0].Functions, ",") != "granted" {
		t.Errorf("Secrets: got %+v, %v; want DB_PASSWORD granted to granted", list, err)
	}
	if b, _ := json.Marshal(list); strings.Contains(string(b), value) {
		t.Errorf("Secrets holds the value: %s", b)
	}
	// Nothing under the data directory holds it in clear: the store
	// (its WAL is not compressed), artifacts, unpacked functions.
	scanned := 0
	filepath.WalkDir(s.Config().DataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("reading %s: %v", p, err)
			return nil
		}
		scanned++
		if bytes.Contains(b, []byte(value)) {
			t.Errorf("%s holds the secret's value in clear", p)
		}
		return nil
	})
	if scanned < 5 {
		t.Errorf("scanned only %d files under the data directory", scanned)
	}
}

// TestSecretRotationReachesWarmInstances: setting a secret again changes
// what the next invocation sees, on the same version (no redeploy), with
// the function's warm instance retired; fails without the rotation (the
// warm instance kept the old environment).
func TestSecretRotationReachesWarmInstances(t *testing.T) {
	s := withGuest(t, registry.Config{})
	ctx := context.Background()
	if _, err := s.SetSecret(ctx, "API_KEY", []byte("one")); err != nil {
		t.Fatal(err)
	}
	cfg := registry.Config{MinWarm: 1, Secrets: []registry.SecretGrant{{Name: "API_KEY"}}}
	if _, err := s.Deploy(ctx, "fn", cfg, bytes.NewReader(guestWasm)); err != nil {
		t.Fatal(err)
	}
	if out := call(t, s, "fn", "env:API_KEY"); string(out.Output) != "one" {
		t.Fatalf("before rotation: got %q, %v", out.Output, out.Err)
	}
	set, err := s.SetSecret(ctx, "API_KEY", []byte("two"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(set.Refreshed, ",") != "fn@1" || set.Version != 2 || len(set.Failed) != 0 {
		t.Errorf("SetSecret: got %+v; want version 2, fn@1 refreshed", set)
	}
	for i := 0; i < 3; i++ {
		out := call(t, s, "fn", "env:API_KEY")
		if string(out.Output) != "two" || out.Version != 1 {
			t.Errorf("after rotation, call %d: got %q from version %d, %v; want two from version 1", i, out.Output, out.Version, out.Err)
		}
	}
	f, _ := s.Describe("fn")
	if f.Pool == nil || f.Pool.Live < 1 {
		t.Errorf("after rotation the pool has %+v, want min_warm kept", f.Pool)
	}
}

// TestSecretValuesRedactedInLogs: a function that logs its secret leaves
// "[secret NAME]" in the log, not the value, the one before a rotation
// included, and one that fails with it in its message leaves the same in
// the error its caller gets and in the invocation's record; fails without
// the redaction.
func TestSecretValuesRedactedInLogs(t *testing.T) {
	s := withGuest(t, registry.Config{})
	ctx := context.Background()
	s.SetSecret(ctx, "DB_PASSWORD", []byte("first-password"))
	cfg := registry.Config{Secrets: []registry.SecretGrant{{Name: "DB_PASSWORD", Env: "PGPASS"}}}
	if _, err := s.Deploy(ctx, "fn", cfg, bytes.NewReader(guestWasm)); err != nil {
		t.Fatal(err)
	}
	call(t, s, "fn", "logenv:PGPASS")
	out := call(t, s, "fn", "failenv:PGPASS")
	if msg := errs.MessageOf(out.Err); strings.Contains(msg, "password") || !strings.Contains(msg, "cannot connect with [secret DB_PASSWORD]") {
		t.Errorf("the function's error: %q; want the value as [secret DB_PASSWORD]", msg)
	}
	if n, err := s.Flow().Get(out.ID); err != nil || strings.Contains(n.ErrorMessage, "password") {
		t.Errorf("the invocation's record: %q, %v; want no value", n.ErrorMessage, err)
	}
	s.SetSecret(ctx, "DB_PASSWORD", []byte("second-password"))
	call(t, s, "fn", "logenv:PGPASS")
	lines, _ := s.Logs.Tail(logs.Query{Function: "fn", N: 10})
	var text []string
	for _, l := range lines {
		text = append(text, l.Text)
	}
	all := strings.Join(text, "\n")
	if strings.Contains(all, "password") || strings.Count(all, "PGPASS is [secret DB_PASSWORD]") != 2 {
		t.Errorf("logs: %q; want each value as [secret DB_PASSWORD]", all)
	}
}

// TestDeployNamingMissingSecretFails: a deploy that grants a secret that
// does not exist fails with bad_request naming it, records nothing, and
// the version serving before keeps serving.
func TestDeployNamingMissingSecretFails(t *testing.T) {
	s := withGuest(t, registry.Config{})
	ctx := context.Background()
	cfg := registry.Config{Secrets: []registry.SecretGrant{{Name: "NOPE"}}}
	_, err := s.Deploy(ctx, "g", cfg, bytes.NewReader(guestWasm))
	if errs.CodeOf(err) != errs.BadRequest || !strings.Contains(errs.MessageOf(err), `"NOPE"`) {
		t.Errorf("deploy with a missing secret: got %v, want bad_request naming NOPE", err)
	}
	if f, _ := s.Describe("g"); f == nil || f.Current != 1 || f.Latest != 1 {
		t.Errorf("after the failed deploy: %+v, want g still at version 1 of 1", f)
	}
	if out := call(t, s, "g", "echo:still"); string(out.Output) != "still" {
		t.Errorf("the old version: got %q, %v", out.Output, out.Err)
	}
}

// TestRemoveGrantedSecretRefused: a secret a current version is granted
// is not removed (conflict, naming the function); once no function is
// granted it, it is.
func TestRemoveGrantedSecretRefused(t *testing.T) {
	s := withGuest(t, registry.Config{})
	ctx := context.Background()
	s.SetSecret(ctx, "TOKEN", []byte("t"))
	if _, err := s.Deploy(ctx, "user", registry.Config{Secrets: []registry.SecretGrant{{Name: "TOKEN"}}}, bytes.NewReader(guestWasm)); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveSecret(ctx, "TOKEN"); errs.CodeOf(err) != errs.Conflict || !strings.Contains(errs.MessageOf(err), "user") {
		t.Errorf("removing a granted secret: got %v, want conflict naming user", err)
	}
	if _, err := s.Deploy(ctx, "user", registry.Config{}, bytes.NewReader(guestWasm)); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveSecret(ctx, "TOKEN"); err != nil {
		t.Errorf("removing it once no function is granted it: %v", err)
	}
}

func TestSecretGrantValidated(t *testing.T) {
	for _, tc := range []struct {
		cfg  registry.Config
		want string
	}{
		{registry.Config{Secrets: []registry.SecretGrant{{Name: "1X"}}}, "not a secret name"},
		{registry.Config{Secrets: []registry.SecretGrant{{Name: "A", Env: "bad-name"}}}, "not a valid variable name"},
		{registry.Config{Env: map[string]string{"A": "x"}, Secrets: []registry.SecretGrant{{Name: "A"}}}, "env sets too"},
		{registry.Config{Secrets: []registry.SecretGrant{{Name: "A"}, {Name: "B", Env: "A"}}}, "both injected as A"},
		{registry.Config{Secrets: []registry.SecretGrant{{Name: "A", Env: "AWS_LAMBDA_RUNTIME_API"}}}, "the runtime sets"},
	} {
		err := tc.cfg.WithDefaults().Validate()
		if errs.CodeOf(err) != errs.BadRequest || !strings.Contains(errs.MessageOf(err), tc.want) {
			t.Errorf("%+v: got %v, want bad_request with %q", tc.cfg.Secrets, err, tc.want)
		}
	}
	var c registry.Config
	if err := json.Unmarshal([]byte(`{"secrets": ["A", {"name": "B", "env": "C"}]}`), &c); err != nil || len(c.Secrets) != 2 || c.Secrets[1].EnvName() != "C" {
		t.Errorf("decoding grants: %+v, %v", c.Secrets, err)
	}
	if err := json.Unmarshal([]byte(`{"secrets": [{"name": "B", "file": "/x"}]}`), &c); err == nil {
		t.Error("a grant with an unknown field decoded")
	}
}

// TestSecretRotationUnderLoad: invocations keep running while the secret
// is set again; none fails, and every invocation that starts after
// SetSecret returns sees the new value (the ones already running may
// finish with the old one).
func TestSecretRotationUnderLoad(t *testing.T) {
	s := withGuest(t, registry.Config{})
	ctx := context.Background()
	s.SetSecret(ctx, "API_KEY", []byte("old-value"))
	cfg := registry.Config{MinWarm: 2, MaxInstances: 4, Secrets: []registry.SecretGrant{{Name: "API_KEY"}}}
	if _, err := s.Deploy(ctx, "fn", cfg, bytes.NewReader(guestWasm)); err != nil {
		t.Fatal(err)
	}
	var rotated atomic.Bool
	stop := make(chan struct{})
	errc := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func() {
			for {
				select {
				case <-stop:
					errc <- nil
					return
				default:
				}
				after := rotated.Load() // read before the invocation starts
				out, err := s.Invoke(ctx, system.Invocation{Function: "fn", Payload: []byte("env:API_KEY")})
				if err == nil {
					err = out.Err
				}
				switch {
				case err != nil:
					errc <- err
					return
				case after && string(out.Output) != "new-value":
					errc <- fmt.Errorf("an invocation started after the rotation saw %q", out.Output)
					return
				}
			}
		}()
	}
	for i := 0; i < 20; i++ { // let the load start on the old value
		call(t, s, "fn", "env:API_KEY")
	}
	if _, err := s.SetSecret(ctx, "API_KEY", []byte("new-value")); err != nil {
		t.Fatal(err)
	}
	rotated.Store(true)
	for i := 0; i < 50; i++ {
		if out := call(t, s, "fn", "env:API_KEY"); string(out.Output) != "new-value" {
			t.Fatalf("after the rotation: got %q, %v", out.Output, out.Err)
		}
	}
	close(stop)
	for g := 0; g < 4; g++ {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
}
