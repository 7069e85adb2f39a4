package store

import (
	"os"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/mote-run/mote/internal/clock"
)

// TestMain lets the durability test re-run this binary as its crashing
// child (see durability_test.go).
func TestMain(m *testing.M) {
	if dir := os.Getenv(durabilityChildEnv); dir != "" {
		durabilityChild(dir)
		return
	}
	os.Exit(m.Run())
}

func openTestDB(t testing.TB, dir string) *DB {
	t.Helper()
	db, err := Open(dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return db
}

// manualSweep is the SweepInterval of tests that move a fake clock and
// call Sweep themselves: the background sweeper runs on the KV's clock,
// so it must not tick while they advance it.
const manualSweep = 1 << 62

// newFakeClock is a clock for TTL and lease tests, moved by Advance.
func newFakeClock() *clock.Fake { return clock.NewFake(time.Unix(1_800_000_000, 0)) }

// openKVAt opens the DB in dir and a KV on it. The caller closes both: the
// tests that use it close them to reopen dir.
func openKVAt(t testing.TB, dir string, cfg KVConfig) (*KV, *DB) {
	t.Helper()
	db := openTestDB(t, dir)
	kv, err := OpenKV(db, cfg)
	if err != nil {
		db.Close()
		t.Fatalf("OpenKV: %v", err)
	}
	return kv, db
}

func newTestKV(t testing.TB, cfg KVConfig) (*KV, *DB) {
	t.Helper()
	db := openTestDB(t, t.TempDir())
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = time.Hour // tests call Sweep themselves
	}
	kv, err := OpenKV(db, cfg)
	if err != nil {
		t.Fatalf("OpenKV: %v", err)
	}
	t.Cleanup(func() {
		kv.Close()
		db.Close()
	})
	return kv, db
}

// pebbleOf is the Pebble database under db, for the benchmarks that
// measure Pebble itself and the checks of its levels.
func pebbleOf(db *DB) *pebble.DB { return db.eng.(*pebbleEngine).pdb }
