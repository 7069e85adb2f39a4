package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// NewVersion returns version number n of fn for the stored artifact sum
// with cfg, as AddVersion makes it; a cluster numbers versions itself and
// records them on each node with PutVersion.
func NewVersion(fn string, n int, sum string, size int64, cfg Config, now time.Time) *Version {
	cfgJSON, _ := json.Marshal(cfg)
	idh := sha256.New()
	idh.Write([]byte(sum))
	idh.Write(cfgJSON)
	return &Version{
		Function: fn,
		Number:   n,
		ID:       hex.EncodeToString(idh.Sum(nil))[:16],
		Artifact: sum,
		Size:     size,
		Config:   cfg,
		Created:  now,
	}
}

// PutVersion records v, numbered elsewhere (by the cluster), creating its
// function if new; the function's current version does not change
// (SetCurrent does that once v is warm). Recording the same version
// again is a no-op.
func (r *Registry) PutVersion(v *Version) error {
	if err := ValidName(v.Function); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := r.function(v.Function)
	if isNotFound(err) {
		f = &Function{Name: v.Function, Created: v.Created}
	} else if err != nil {
		return err
	}
	// The version first: a crash between the two writes leaves a version
	// no function record counts yet, which the next PutVersion rewrites.
	vb, _ := json.Marshal(v)
	if err := r.db.Set(versionKey(v.Function, v.Number), vb, true); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	f.Latest = max(f.Latest, v.Number)
	f.Updated = time.Now().UTC()
	fb, _ := json.Marshal(f)
	if err := r.db.Set(functionKey(v.Function), fb, true); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	return nil
}
