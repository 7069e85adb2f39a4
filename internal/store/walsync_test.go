package store

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

const unsyncedCrashChildEnv = "MOTE_STORE_UNSYNCED_CRASH_CHILD"

// unsyncedWrites is how many writes of each kind the child makes.
const unsyncedWrites = 20

// TestUnsyncedWritesCrashChild is the child process of
// TestUnsyncedWritesSurviveKill; run on its own it skips. On a DB opened
// with Open's defaults it makes unsyncedWrites buffered KV puts, plain
// Sets with sync=false, buffered counter increments and buffered queue
// pushes, prints "done", and then makes no write at all until killed.
func TestUnsyncedWritesCrashChild(t *testing.T) {
	dir := os.Getenv(unsyncedCrashChildEnv)
	if dir == "" {
		t.Skip("child of TestUnsyncedWritesSurviveKill")
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	db, err := Open(dir)
	if err != nil {
		fail(err)
	}
	kv, err := OpenKV(db, KVConfig{Durability: Buffered})
	if err != nil {
		fail(err)
	}
	coord, err := OpenCoord(db, CoordConfig{Durability: Buffered})
	if err != nil {
		fail(err)
	}
	for i := range unsyncedWrites {
		if _, err := kv.Put("buf", fmt.Sprintf("k%02d", i), []byte(strconv.Itoa(i)), WriteOptions{}); err != nil {
			fail(err)
		}
		if err := db.Set(fmt.Appendf(nil, "t/set/%02d", i), []byte(strconv.Itoa(i)), false); err != nil {
			fail(err)
		}
		if _, err := coord.Add("c", "n", 1); err != nil {
			fail(err)
		}
		if _, err := coord.Push("c", "q", []byte(strconv.Itoa(i))); err != nil {
			fail(err)
		}
	}
	fmt.Println("done")
	select {}
}

// TestUnsyncedWritesSurviveKill checks the bound on what a kill -9 loses
// of writes committed without sync: a child makes buffered KV puts, plain
// Sets with sync=false and buffered coord writes, then stays idle for ten
// default sync intervals and is SIGKILLed. Every write must be in the
// reopened store. Without the DB's WAL syncer none is: Pebble holds them
// in its in-memory WAL block, which an idle process never writes out.
func TestUnsyncedWritesSurviveKill(t *testing.T) {
	dir := t.TempDir()
	child := startCrashChild(t, "^TestUnsyncedWritesCrashChild$", unsyncedCrashChildEnv, dir)
	if !child.out.Scan() || child.out.Text() != "done" {
		child.kill(t, func(string) {})
		t.Fatalf("child did not finish its writes; stderr: %s", child.stderr.String())
	}
	time.Sleep(10 * DefaultSyncInterval)
	child.kill(t, func(line string) { t.Errorf("child printed %q after done", line) })

	db := openTestDB(t, dir)
	defer db.Close()
	kv, err := OpenKV(db, KVConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	coord, err := OpenCoord(db, CoordConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer coord.Close()

	var lostKV, lostSet []int
	for i := range unsyncedWrites {
		if e, err := kv.Get("buf", fmt.Sprintf("k%02d", i)); err != nil || string(e.Value) != strconv.Itoa(i) {
			lostKV = append(lostKV, i)
		}
		if v, err := db.Get(fmt.Appendf(nil, "t/set/%02d", i)); err != nil || string(v) != strconv.Itoa(i) {
			lostSet = append(lostSet, i)
		}
	}
	if len(lostKV) > 0 {
		t.Errorf("buffered KV puts lost: %d of %d (%v)", len(lostKV), unsyncedWrites, lostKV)
	}
	if len(lostSet) > 0 {
		t.Errorf("Set(sync=false) writes lost: %d of %d (%v)", len(lostSet), unsyncedWrites, lostSet)
	}
	if got, err := coord.Counter("c", "n"); err != nil || got != unsyncedWrites {
		t.Errorf("buffered counter = %d, %v; want %d", got, err, unsyncedWrites)
	}
	if got, err := coord.Len("c", "q"); err != nil || got != unsyncedWrites {
		t.Errorf("buffered queue length = %d, %v; want %d", got, err, unsyncedWrites)
	}
}

// TestWALSyncerSyncsOnlyWhatIsPending checks that the syncer syncs once
// after writes committed without sync, whether through DB.Set or directly
// on Pebble(), and that an idle DB, fresh or after its sync, does not sync
// again.
func TestWALSyncerSyncsOnlyWhatIsPending(t *testing.T) {
	const interval = 2 * time.Millisecond
	db, err := OpenWithConfig(t.TempDir(), DBConfig{SyncInterval: interval})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// idle waits many intervals and checks that no sync happened meanwhile.
	idle := func(when string) {
		t.Helper()
		before := db.c.walSyncs.Load()
		time.Sleep(50 * interval)
		if got := db.c.walSyncs.Load(); got != before {
			t.Errorf("%s: %d syncs while idle for %v, want 0", when, got-before, 50*interval)
		}
	}
	// synced waits for the sync that write's pending bytes call for.
	synced := func(what string, write func() error) {
		t.Helper()
		before := db.c.walSyncs.Load()
		if err := write(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for deadline := time.Now().Add(5 * time.Second); db.c.walSyncs.Load() == before; {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no WAL sync within 5 s", what)
			}
			time.Sleep(interval)
		}
	}

	idle("fresh DB")
	synced("DB.Set(sync=false)", func() error { return db.Set([]byte("t/a"), []byte("1"), false) })
	idle("after DB.Set's sync")
	synced("DB.Delete(sync=false)", func() error { return db.Delete([]byte("t/a"), false) })
	idle("after DB.Delete's sync")
	synced("Pebble().Set(NoSync)", func() error { return pebbleOf(db).Set([]byte("t/b"), []byte("2"), pebble.NoSync) })
	idle("after Pebble().Set's sync")
}

func TestDBConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  DBConfig
		want bool // valid
	}{
		{DBConfig{}, true},
		{DBConfig{SyncInterval: time.Millisecond}, true},
		{DBConfig{SyncInterval: -time.Millisecond}, false},
	} {
		if got := tc.cfg.Validate() == nil; got != tc.want {
			t.Errorf("%+v.Validate() valid = %v, want %v", tc.cfg, got, tc.want)
		}
	}
	if db, err := OpenWithConfig(t.TempDir(), DBConfig{SyncInterval: -1}); err == nil {
		db.Close()
		t.Errorf("OpenWithConfig with a negative SyncInterval succeeded")
	}
	if got := (DBConfig{}).WithDefaults().SyncInterval; got != DefaultSyncInterval {
		t.Errorf("default SyncInterval = %v, want %v", got, DefaultSyncInterval)
	}
}
