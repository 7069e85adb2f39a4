// Package registry keeps deployed functions and their immutable versions.
//
// A version is a content-addressed artifact (a wasm module, or a tar of a
// process function's directory) plus its Config, numbered 1, 2, 3… per
// function. The function points at one current version; deploy adds a
// version, rollback moves the pointer. Records live in the Pebble store
// under store.PrefixRegistry, written synced; artifacts are files named by
// their SHA-256 under the data directory, written with fsync + rename.
package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/store"
)

// Function is a deployed function's record.
type Function struct {
	Name    string    `json:"name"`
	Current int       `json:"current"` // version number taking traffic
	Latest  int       `json:"latest"`  // highest version number made
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// Version is one immutable version of a function.
type Version struct {
	Function string    `json:"function"`
	Number   int       `json:"number"`
	ID       string    `json:"id"`       // content hash of artifact and config
	Artifact string    `json:"artifact"` // SHA-256 of the artifact, hex
	Size     int64     `json:"size"`     // artifact bytes
	Config   Config    `json:"config"`
	Created  time.Time `json:"created"`
}

// Key is the version's unique name across functions, as pools use it.
func (v *Version) Key() string { return fmt.Sprintf("%s@%d", v.Function, v.Number) }

// Registry stores functions, versions and artifacts.
type Registry struct {
	db  *store.DB
	dir string // artifact directory

	mu sync.Mutex // serialises read-modify-write of function records
}

// Open returns a registry over db, keeping artifacts in dir, which it
// makes 0700: an artifact may hold a function's config, env values and
// all.
func Open(db *store.DB, dir string) (*Registry, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return &Registry{db: db, dir: dir}, nil
}

// PutArtifact stores the artifact read from r, at most max bytes, and
// returns its SHA-256 (hex) and size. Storing the same bytes twice is a
// no-op the second time.
func (r *Registry) PutArtifact(src io.Reader, max int64) (sum string, size int64, err error) {
	tmp, err := os.CreateTemp(r.dir, ".upload-*")
	if err != nil {
		return "", 0, fmt.Errorf("registry: %w", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(src, max+1))
	if err != nil {
		return "", 0, errs.Wrap(errs.BadRequest, err, "reading artifact: "+err.Error())
	}
	if n > max {
		return "", 0, errs.E(errs.PayloadTooLarge, "artifact larger than %d bytes", max)
	}
	if n == 0 {
		return "", 0, errs.E(errs.BadRequest, "artifact is empty")
	}
	if err := tmp.Sync(); err != nil {
		return "", 0, fmt.Errorf("registry: %w", err)
	}
	sum = hex.EncodeToString(h.Sum(nil))
	dst := r.ArtifactPath(sum)
	if _, err := os.Stat(dst); err == nil {
		return sum, n, nil
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", 0, fmt.Errorf("registry: %w", err)
	}
	if d, err := os.Open(r.dir); err == nil {
		d.Sync()
		d.Close()
	}
	return sum, n, nil
}

// ArtifactPath is where the artifact with the given hash is stored.
func (r *Registry) ArtifactPath(sum string) string { return filepath.Join(r.dir, sum) }

// ReadArtifact returns the artifact's bytes.
func (r *Registry) ReadArtifact(sum string) ([]byte, error) {
	b, err := os.ReadFile(r.ArtifactPath(sum))
	if err != nil {
		return nil, fmt.Errorf("registry: artifact %s: %w", sum, err)
	}
	return b, nil
}

// AddVersion records a new version of fn (creating fn if new) with the
// stored artifact sum. With makeCurrent it also takes traffic at once;
// otherwise the caller warms it and calls SetCurrent.
func (r *Registry) AddVersion(name, sum string, size int64, cfg Config, makeCurrent bool) (*Version, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now().UTC()
	f, err := r.function(name)
	if isNotFound(err) {
		f = &Function{Name: name, Created: now}
	} else if err != nil {
		return nil, err
	}
	v := NewVersion(name, f.Latest+1, sum, size, cfg, now)
	f.Latest = v.Number
	f.Updated = now
	if makeCurrent {
		f.Current = v.Number
	}
	b := r.db.NewBatch()
	defer b.Close()
	vb, _ := json.Marshal(v)
	fb, _ := json.Marshal(f)
	b.Set(versionKey(name, v.Number), vb)
	b.Set(functionKey(name), fb)
	if err := r.db.Commit(b, store.Durable); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return v, nil
}

// SetCurrent points fn at version number n (deploy's last step, and
// rollback).
func (r *Registry) SetCurrent(name string, n int) (*Version, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := r.function(name)
	if err != nil {
		return nil, err
	}
	v, err := r.Version(name, n)
	if err != nil {
		return nil, err
	}
	f.Current = n
	f.Updated = time.Now().UTC()
	fb, _ := json.Marshal(f)
	if err := r.db.Set(functionKey(name), fb, true); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return v, nil
}

// Function returns fn's record, or errs.NotFound.
func (r *Registry) Function(name string) (*Function, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.function(name)
}

func (r *Registry) function(name string) (*Function, error) {
	b, err := r.db.Get(functionKey(name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, errs.E(errs.NotFound, "function %q not found", name)
	}
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	var f Function
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("registry: corrupt record for %s: %w", name, err)
	}
	return &f, nil
}

// Version returns version n of fn, or errs.NotFound.
func (r *Registry) Version(name string, n int) (*Version, error) {
	b, err := r.db.Get(versionKey(name, n))
	if errors.Is(err, store.ErrNotFound) {
		return nil, errs.E(errs.NotFound, "function %q has no version %d", name, n)
	}
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	var v Version
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("registry: corrupt version %s@%d: %w", name, n, err)
	}
	return &v, nil
}

// Current returns the version of fn that takes traffic.
func (r *Registry) Current(name string) (*Version, error) {
	f, err := r.Function(name)
	if err != nil {
		return nil, err
	}
	if f.Current == 0 {
		return nil, errs.E(errs.NotFound, "function %q has no active version", name)
	}
	return r.Version(name, f.Current)
}

// Versions lists fn's versions, oldest first.
func (r *Registry) Versions(name string) ([]*Version, error) {
	if _, err := r.Function(name); err != nil {
		return nil, err
	}
	var out []*Version
	var bad error
	err := r.db.Scan(versionPrefix(name), func(_, val []byte) bool {
		var v Version
		if bad = json.Unmarshal(val, &v); bad != nil {
			return false
		}
		out = append(out, &v)
		return true
	})
	if err == nil {
		err = bad
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out, err
}

// List returns every function, by name.
func (r *Registry) List() ([]*Function, error) {
	var out []*Function
	var bad error
	err := r.db.Scan([]byte(store.PrefixRegistry+"f/"), func(_, val []byte) bool {
		var f Function
		if bad = json.Unmarshal(val, &f); bad != nil {
			return false
		}
		out = append(out, &f)
		return true
	})
	if err == nil {
		err = bad
	}
	return out, err
}

// Delete removes fn, all its versions, and artifacts no other version uses.
func (r *Registry) Delete(name string) error {
	vs, err := r.Versions(name)
	if err != nil {
		return err
	}
	if err := r.deleteAliases(name); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.db.NewBatch()
	defer b.Close()
	b.Delete(functionKey(name))
	for _, v := range vs {
		b.Delete(versionKey(name, v.Number))
	}
	if err := r.db.Commit(b, store.Durable); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	sums := make([]string, len(vs))
	for i, v := range vs {
		sums[i] = v.Artifact
	}
	r.dropUnusedLocked(sums)
	return nil
}

// DropVersion forgets version n of fn, which must be fn's latest and not
// its current one: a deploy whose warm-up failed leaves nothing behind.
// A function left with no version is deleted.
func (r *Registry) DropVersion(name string, n int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := r.function(name)
	if err != nil {
		return err
	}
	if n != f.Latest || n == f.Current {
		return errs.E(errs.Conflict, "version %d of %q is not an unused latest version", n, name)
	}
	v, err := r.Version(name, n)
	if err != nil {
		return err
	}
	b := r.db.NewBatch()
	defer b.Close()
	b.Delete(versionKey(name, n))
	if f.Current == 0 && n == 1 {
		b.Delete(functionKey(name))
	} else {
		f.Latest = n - 1
		fb, _ := json.Marshal(f)
		b.Set(functionKey(name), fb)
	}
	if err := r.db.Commit(b, store.Durable); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	r.dropUnusedLocked([]string{v.Artifact})
	return nil
}

// DropUnused removes the stored artifacts among sums that no version
// refers to (artifacts are shared by content between versions and
// functions).
func (r *Registry) DropUnused(sums ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dropUnusedLocked(sums)
}

func (r *Registry) dropUnusedLocked(sums []string) {
	inUse := map[string]bool{}
	_ = r.db.Scan([]byte(store.PrefixRegistry+"v/"), func(_, val []byte) bool {
		var v Version
		if json.Unmarshal(val, &v) == nil {
			inUse[v.Artifact] = true
		}
		return true
	})
	for _, sum := range sums {
		if !inUse[sum] {
			os.Remove(r.ArtifactPath(sum))
		}
	}
}

func isNotFound(err error) bool { return errs.CodeOf(err) == errs.NotFound }

func functionKey(name string) []byte { return []byte(store.PrefixRegistry + "f/" + name) }

func versionPrefix(name string) []byte { return []byte(store.PrefixRegistry + "v/" + name + "/") }

func versionKey(name string, n int) []byte {
	return []byte(fmt.Sprintf("%sv/%s/%010d", store.PrefixRegistry, name, n))
}
