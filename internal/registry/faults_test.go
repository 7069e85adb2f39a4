package registry

import (
	"errors"
	"strings"
	"testing"

	"github.com/mote-run/mote/internal/store"
	"github.com/mote-run/mote/internal/store/faultfs"
)

// TestRegistryWriteFailsWhenTheWALFails injects a failed WAL fsync and
// checks that adding a version and deleting a function return an error
// instead of succeeding, that reads go on, and that what was recorded
// before the fault is there after a restart without faults.
func TestRegistryWriteFailsWhenTheWALFails(t *testing.T) {
	dir, art := t.TempDir(), t.TempDir()
	fs := faultfs.New()
	db, err := store.OpenWithConfig(dir, store.DBConfig{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(db, art)
	if err != nil {
		t.Fatal(err)
	}
	sum, _, err := r.PutArtifact(strings.NewReader("module a"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{}.WithDefaults()
	if _, err := r.AddVersion("f", sum, 8, cfg, true); err != nil {
		t.Fatal(err)
	}

	fs.Fail(faultfs.Syncs | faultfs.Writes)
	if v, err := r.AddVersion("f", sum, 8, cfg, true); err == nil {
		t.Errorf("AddVersion with the WAL failing: acknowledged version %d, want an error", v.Number)
	} else if !errors.Is(err, store.ErrWriteFailed) {
		t.Errorf("AddVersion error %v, want one wrapping store.ErrWriteFailed", err)
	}
	if err := r.Delete("f"); err == nil {
		t.Error("Delete with the WAL failing: acknowledged, want an error")
	}
	// Reads go on. Pebble applies a batch to its memtable before the
	// fsync that fails, so the refused version may be visible until a
	// restart; it was never acknowledged.
	if cur, err := r.Current("f"); err != nil || (cur.Number != 1 && cur.Number != 2) {
		t.Errorf("Current while writes fail: %+v, %v; want version 1 (or the refused 2)", cur, err)
	}
	db.Close()

	db, err = store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r, err = Open(db, art)
	if err != nil {
		t.Fatal(err)
	}
	// The WAL write failed too, so nothing of the refused version reached
	// the disk.
	if cur, err := r.Current("f"); err != nil || cur.Number != 1 {
		t.Errorf("after restart: Current = %+v, %v; want version 1", cur, err)
	}
}
