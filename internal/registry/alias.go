package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/store"
)

// Alias names a version of a function (name:alias), optionally sending a
// share of its traffic to a second version, as a Lambda alias's routing
// configuration does: moved in steps for a gradual deploy, back for a
// rollback.
type Alias struct {
	Function string `json:"function"`
	Name     string `json:"name"`
	Version  int    `json:"version"`
	// Weight, if set, sends Weight.Percent of the alias's invocations to
	// Weight.Version instead of Version.
	Weight  *Weight   `json:"weight,omitempty"`
	Updated time.Time `json:"updated"`
}

// Weight is an alias's second version and its share of traffic.
type Weight struct {
	Version int     `json:"version"`
	Percent float64 `json:"percent"` // 0 < Percent < 100
}

var aliasName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// ParseRef splits a function reference: "name", "name@N" (a pinned
// version, N ≥ 1) or "name:alias". Lambda's qualifier "$LATEST" reads as
// the current version.
func ParseRef(ref string) (name string, version int, alias string, err error) {
	if n, q, ok := strings.Cut(ref, "@"); ok {
		v, perr := strconv.Atoi(q)
		if perr != nil || v < 1 || strconv.Itoa(v) != q {
			return "", 0, "", errs.E(errs.BadRequest, "invalid version %q in %q: want name@N, N ≥ 1", q, ref)
		}
		return n, v, "", ValidName(n)
	}
	if n, q, ok := strings.Cut(ref, ":"); ok {
		if err := qualify(n, q, &version, &alias); err != nil {
			return "", 0, "", err
		}
		return n, version, alias, nil
	}
	return ref, 0, "", ValidName(ref)
}

// WithQualifier applies a Lambda Invoke API Qualifier to a function name:
// a version number, $LATEST or an alias name.
func WithQualifier(name, q string) (string, error) {
	if err := ValidName(name); err != nil {
		return "", err
	}
	if q == "" || q == "$LATEST" {
		return name, nil
	}
	var version int
	var alias string
	if err := qualify(name, q, &version, &alias); err != nil {
		return "", err
	}
	if version > 0 {
		return name + "@" + strconv.Itoa(version), nil
	}
	return name + ":" + alias, nil
}

func qualify(name, q string, version *int, alias *string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if q == "$LATEST" {
		return nil
	}
	if v, err := strconv.Atoi(q); err == nil && v >= 1 && strconv.Itoa(v) == q {
		*version = v
		return nil
	}
	if !aliasName.MatchString(q) {
		return errs.E(errs.BadRequest, "invalid qualifier %q: a version number, $LATEST or an alias (a-z 0-9 - _, starting with a letter)", q)
	}
	*alias = q
	return nil
}

// BaseName is a reference's function name, without @N or :alias.
func BaseName(ref string) string {
	if i := strings.IndexAny(ref, "@:"); i >= 0 {
		return ref[:i]
	}
	return ref
}

// SetAlias creates or moves an alias. The versions must exist.
func (r *Registry) SetAlias(a Alias) (*Alias, error) {
	if !aliasName.MatchString(a.Name) {
		return nil, errs.E(errs.BadRequest, "invalid alias name %q: use a-z 0-9 - _, starting with a letter", a.Name)
	}
	if a.Name == "latest" {
		return nil, errs.E(errs.BadRequest, "alias name %q is reserved", a.Name)
	}
	if _, err := r.Version(a.Function, a.Version); err != nil {
		return nil, err
	}
	if w := a.Weight; w != nil {
		switch {
		case w.Version == a.Version:
			return nil, errs.E(errs.BadRequest, "alias %s: the weighted version %d is the alias's own", a.Name, w.Version)
		case !(w.Percent > 0 && w.Percent < 100):
			return nil, errs.E(errs.BadRequest, "alias %s: weight %v%% is not in (0, 100)", a.Name, w.Percent)
		}
		if _, err := r.Version(a.Function, w.Version); err != nil {
			return nil, err
		}
	}
	a.Updated = time.Now().UTC()
	b, err := json.Marshal(&a)
	if err != nil {
		return nil, err
	}
	if err := r.db.Set(aliasKey(a.Function, a.Name), b, true); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return &a, nil
}

// Alias returns fn's alias name.
func (r *Registry) Alias(fn, name string) (*Alias, error) {
	b, err := r.db.Get(aliasKey(fn, name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, errs.E(errs.NotFound, "function %q has no alias %q", fn, name)
	}
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	var a Alias
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("registry: alias %s:%s: %w", fn, name, err)
	}
	return &a, nil
}

// Aliases returns fn's aliases by name.
func (r *Registry) Aliases(fn string) ([]*Alias, error) {
	var out []*Alias
	var bad error
	err := r.db.Scan(aliasPrefix(fn), func(_, v []byte) bool {
		var a Alias
		if bad = json.Unmarshal(v, &a); bad != nil {
			return false
		}
		out = append(out, &a)
		return true
	})
	if err == nil {
		err = bad
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// DeleteAlias removes fn's alias name.
func (r *Registry) DeleteAlias(fn, name string) error {
	if _, err := r.Alias(fn, name); err != nil {
		return err
	}
	return r.db.Delete(aliasKey(fn, name), true)
}

// deleteAliases removes every alias of fn.
func (r *Registry) deleteAliases(fn string) error {
	as, err := r.Aliases(fn)
	if err != nil {
		return err
	}
	for _, a := range as {
		if err := r.db.Delete(aliasKey(fn, a.Name), true); err != nil {
			return err
		}
	}
	return nil
}

func aliasPrefix(fn string) []byte { return []byte(store.PrefixRegistry + "alias/" + fn + "/") }

func aliasKey(fn, name string) []byte { return append(aliasPrefix(fn), name...) }
