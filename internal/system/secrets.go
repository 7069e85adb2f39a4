package system

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/secrets"
)

// Secret describes a secret without its value: its Info and the functions
// whose current version is granted it.
type Secret struct {
	secrets.Info
	Functions []string `json:"functions"`
}

// SecretSet is what SetSecret did: the secret, and the function versions
// whose instances were replaced to pick up the new value.
type SecretSet struct {
	Secret
	// Refreshed lists the versions (fn@N) now starting instances with the
	// new value; Failed those whose reload failed (their instances keep
	// the old value until the next deploy or restart), with the reason.
	Refreshed []string          `json:"refreshed"`
	Failed    map[string]string `json:"failed,omitempty"`
}

// env is v's environment: its config's env, and the value of each secret
// it is granted under the grant's variable name. A granted secret that
// does not exist fails the load, so a deploy that names one fails before
// anything is recorded.
func (s *System) env(v *registry.Version) (map[string]string, error) {
	if len(v.Config.Secrets) == 0 {
		return v.Config.Env, nil
	}
	env := make(map[string]string, len(v.Config.Env)+len(v.Config.Secrets))
	maps.Copy(env, v.Config.Env)
	for _, g := range v.Config.Secrets {
		val, _, err := s.sec.Value(g.Name)
		if errs.CodeOf(err) == errs.NotFound {
			return nil, errs.Wrap(errs.BadRequest, err, fmt.Sprintf("function %s: its config grants secret %q, which does not exist: set it first with mote secret set %s", v.Function, g.Name, g.Name))
		}
		if err != nil {
			return nil, err
		}
		env[g.EnvName()] = string(val)
	}
	s.remember(v.Function, v.Config.Secrets, env)
	return env, nil
}

// redactor replaces the values of a function's secrets in its log lines
// with "[secret NAME]": a function that prints its environment does not
// put its secrets in `mote logs`. It knows, per secret, the value its
// instances were last loaded with and the one before (instances started
// before a rotation may still be running).
type redactor struct {
	values map[string][]string // secret name → [latest, previous]
	r      *strings.Replacer
}

// minRedacted is the shortest value redacted: shorter ones would blank
// out ordinary words.
const minRedacted = 4

// remember records the secret values a version of fn was loaded with.
func (s *System) remember(fn string, grants []registry.SecretGrant, env map[string]string) {
	s.redactMu.Lock()
	defer s.redactMu.Unlock()
	cur := (*s.redactors.Load())[fn]
	next := &redactor{values: map[string][]string{}}
	for _, g := range grants {
		v := env[g.EnvName()]
		if len(v) < minRedacted {
			continue
		}
		vals := []string{v}
		if cur != nil {
			if old := cur.values[g.Name]; len(old) > 0 && old[0] != v {
				vals = append(vals, old[0])
			}
		}
		next.values[g.Name] = vals
	}
	var pairs []string
	for name, vals := range next.values {
		for _, v := range vals {
			pairs = append(pairs, v, "[secret "+name+"]")
		}
	}
	// Longest first, so a value that holds another is replaced whole
	// (strings.Replacer tries old strings in argument order).
	for i := 2; i < len(pairs); i += 2 {
		for j := i; j > 0 && len(pairs[j]) > len(pairs[j-2]); j -= 2 {
			pairs[j], pairs[j+1], pairs[j-2], pairs[j-1] = pairs[j-2], pairs[j-1], pairs[j], pairs[j+1]
		}
	}
	m := maps.Clone(*s.redactors.Load())
	if len(pairs) == 0 {
		delete(m, fn)
	} else {
		next.r = strings.NewReplacer(pairs...)
		m[fn] = next
	}
	s.redactors.Store(&m)
}

// redactErr returns err with fn's secret values replaced in its message:
// a start failure carries the tail of the function's output, and a
// function's error its own message, both of which reach whoever invoked
// or deployed it. The code is kept; the cause too, unless its text holds
// a value. Errors that hold no value are returned as they are.
func (s *System) redactErr(fn string, err error) error {
	r := (*s.redactors.Load())[fn]
	var e *errs.Error
	if r == nil || !errors.As(err, &e) {
		return err
	}
	msg := r.r.Replace(e.Message)
	cause := e.Err
	if cause != nil && r.r.Replace(cause.Error()) != cause.Error() {
		cause = nil
	}
	if msg == e.Message && cause == e.Err {
		return err
	}
	return &errs.Error{Code: e.Code, Message: msg, Err: cause}
}

// forget drops fn's redactor (the function is removed).
func (s *System) forget(fn string) {
	s.redactMu.Lock()
	defer s.redactMu.Unlock()
	m := maps.Clone(*s.redactors.Load())
	delete(m, fn)
	s.redactors.Store(&m)
}

// redact returns text with fn's secret values replaced.
func (s *System) redact(fn, text string) string {
	if r := (*s.redactors.Load())[fn]; r != nil {
		return r.r.Replace(text)
	}
	return text
}

// SetSecret stores a secret's new value and makes every function version
// granted it pick the value up without a redeploy: each such pool
// (current or retiring) gets its version loaded again with the new
// environment (scheduler.Pool.Replace). Idle instances stop at once;
// invocations already running finish with the old value on their
// instance, which then stops; every invocation that starts after
// SetSecret returns runs with the new value. A current version with
// min_warm is warmed again before SetSecret returns.
func (s *System) SetSecret(ctx context.Context, name string, value []byte) (*SecretSet, error) {
	// Under deployMu no version is loaded meanwhile: a pool made after the
	// store is written has the new value, one made before is refreshed.
	s.deployMu.Lock()
	defer s.deployMu.Unlock()
	info, err := s.sec.Set(name, value)
	if err != nil {
		return nil, err
	}
	out := &SecretSet{Secret: Secret{Info: info, Functions: s.grantedTo(name)}, Refreshed: []string{}}
	for _, p := range s.sched.Pools() {
		v, err := s.poolVersion(p.Key())
		if err != nil || !v.Config.Grants(name) {
			continue
		}
		err = s.reload(ctx, v, p.Key())
		if err != nil {
			s.log.Warn("secret rotation: reloading a version failed; its instances keep the old value", "version", p.Key(), "secret", name, "err", s.redactErr(v.Function, err))
			if out.Failed == nil {
				out.Failed = map[string]string{}
			}
			out.Failed[p.Key()] = errs.MessageOf(err)
			continue
		}
		out.Refreshed = append(out.Refreshed, p.Key())
	}
	sort.Strings(out.Refreshed)
	return out, nil
}

// reload loads v again and has its pool start instances from the new
// module; a current version is warmed to its min_warm again.
func (s *System) reload(ctx context.Context, v *registry.Version, key string) error {
	rt, ok := s.cfg.Runtimes[v.Config.Runtime]
	if !ok {
		return errs.E(errs.Unavailable, "runtime %q is not available on this server", v.Config.Runtime)
	}
	mod, err := s.load(ctx, rt, v)
	if err != nil {
		return err
	}
	p := s.sched.Pool(key)
	if p == nil {
		mod.Close(ctx)
		return nil // dropped meanwhile: nothing runs the old value
	}
	if err := p.Replace(ctx, mod); err != nil {
		return err
	}
	if a := s.lookup(v.Function); a != nil && a.pool == p && v.Config.MinWarm > 0 {
		if err := p.Warm(ctx, v.Config.MinWarm); err != nil {
			s.log.Warn("secret rotation: warming", "version", key, "err", s.redactErr(v.Function, err))
		}
	}
	return nil
}

// poolVersion returns the version a pool key (fn@N) names.
func (s *System) poolVersion(key string) (*registry.Version, error) {
	i := strings.LastIndexByte(key, '@')
	if i < 0 {
		return nil, errs.E(errs.Internal, "pool key %q names no version", key)
	}
	n, err := strconv.Atoi(key[i+1:])
	if err != nil {
		return nil, errs.E(errs.Internal, "pool key %q names no version", key)
	}
	return s.reg.Version(key[:i], n)
}

// grantedTo returns the functions whose current version is granted secret.
func (s *System) grantedTo(secret string) []string {
	fns := []string{}
	for name, a := range *s.fns.Load() {
		if a.version.Config.Grants(secret) {
			fns = append(fns, name)
		}
	}
	sort.Strings(fns)
	return fns
}

// Secrets lists every secret, without values.
func (s *System) Secrets() ([]Secret, error) {
	infos, err := s.sec.List()
	if err != nil {
		return nil, err
	}
	out := make([]Secret, len(infos))
	for i, info := range infos {
		out[i] = Secret{Info: info, Functions: s.grantedTo(info.Name)}
	}
	return out, nil
}

// SecretInfo describes one secret, without its value.
func (s *System) SecretInfo(name string) (*Secret, error) {
	if err := secrets.ValidName(name); err != nil {
		return nil, err
	}
	info, err := s.sec.Info(name)
	if err != nil {
		return nil, err
	}
	return &Secret{Info: info, Functions: s.grantedTo(name)}, nil
}

// RemoveSecret deletes a secret that no function's current version is
// granted; otherwise it fails with conflict, naming them. (An earlier
// version that names it can no longer be rolled back to until the secret
// is set again: the rollback fails with a clear error.)
func (s *System) RemoveSecret(ctx context.Context, name string) error {
	s.deployMu.Lock()
	defer s.deployMu.Unlock()
	if err := secrets.ValidName(name); err != nil {
		return err
	}
	if fns := s.grantedTo(name); len(fns) > 0 {
		return errs.E(errs.Conflict, "secret %q is granted to %s: deploy them without it first", name, strings.Join(fns, ", "))
	}
	return s.sec.Delete(name)
}
