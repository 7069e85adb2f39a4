package store

import (
	"errors"
	"fmt"
	"testing"

	"github.com/mote-run/mote/internal/store/faultfs"
)

// TestWALFaultFailsDurableWrites injects a failed WAL fsync, then a failed
// WAL write, under a DB and checks that every durable write made while the
// fault is in effect returns an error (never an acknowledgement), that
// the DB refuses writes after the first failure while reads go on, and
// that every write acknowledged before the fault is in the database when
// it is reopened without faults.
//
// Fails without the fix: Pebble reports a failed commit through
// Logger.Fatalf, which panicked the process (quietLogger) before the
// engine turned it into ErrWriteFailed.
func TestWALFaultFailsDurableWrites(t *testing.T) {
	for _, tt := range []struct {
		name   string
		faults faultfs.Faults
	}{
		{"fsync", faultfs.Syncs},
		{"write", faultfs.Writes},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			fs := faultfs.New()
			db, err := OpenWithConfig(dir, DBConfig{FS: fs})
			if err != nil {
				t.Fatal(err)
			}
			kv, err := OpenKV(db, KVConfig{Durability: Durable})
			if err != nil {
				t.Fatal(err)
			}
			coord, err := OpenCoord(db, CoordConfig{})
			if err != nil {
				t.Fatal(err)
			}
			const acked = 20
			for i := range acked {
				if _, err := kv.Put("b", fmt.Sprintf("k%02d", i), []byte("v"), WriteOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := coord.Add("c", "n", 1); err != nil {
				t.Fatal(err)
			}

			fs.Fail(tt.faults)
			writes := []struct {
				name  string
				write func() error
			}{
				{"durable put", func() error {
					_, err := kv.Put("b", "x", []byte("v"), WriteOptions{})
					return err
				}},
				{"durable batch", func() error {
					_, err := kv.Batch([]BatchOp{{Bucket: "b", Key: "y", Value: []byte("v")}}, WriteOptions{})
					return err
				}},
				{"durable delete", func() error { return kv.Delete("b", "k00", WriteOptions{}) }},
				{"buffered put", func() error {
					_, err := kv.Put("b", "z", []byte("v"), WriteOptions{Durability: Buffered})
					return err
				}},
				{"counter", func() error { _, err := coord.Add("c", "n", 1); return err }},
				{"queue push", func() error { _, err := coord.Push("c", "q", []byte("i")); return err }},
				{"durable commit", func() error {
					b := db.NewBatch()
					defer b.Close()
					b.Set([]byte("t/a"), []byte("1"))
					return db.Commit(b, Durable)
				}},
			}
			for _, w := range writes {
				err := w.write()
				if err == nil {
					t.Errorf("%s with the WAL failing: acknowledged, want an error", w.name)
					continue
				}
				if !errors.Is(err, ErrWriteFailed) {
					t.Errorf("%s: error %v, want one wrapping ErrWriteFailed", w.name, err)
				}
			}
			if fs.Injected() == 0 {
				t.Fatal("no fault was injected")
			}
			if !errors.Is(db.Err(), faultfs.ErrInjected) {
				t.Errorf("db.Err() = %v, want the injected error", db.Err())
			}
			// Healing the disk does not make the DB write again: its WAL
			// cannot be trusted until a restart.
			fs.Heal()
			if _, err := kv.Put("b", "after", []byte("v"), WriteOptions{}); err == nil {
				t.Error("durable put after the fault healed: acknowledged by a DB whose WAL failed")
			}
			// Reads go on.
			for i := range acked {
				if e, err := kv.Get("b", fmt.Sprintf("k%02d", i)); err != nil || string(e.Value) != "v" {
					t.Fatalf("read k%02d while writes fail: %q, %v", i, e.Value, err)
				}
			}
			if _, err := kv.List("b", "", "", 100); err != nil {
				t.Errorf("list while writes fail: %v", err)
			}
			kv.Close()
			coord.Close()
			db.Close()

			db, err = Open(dir)
			if err != nil {
				t.Fatalf("reopen after the fault: %v", err)
			}
			defer db.Close()
			kv, err = OpenKV(db, KVConfig{})
			if err != nil {
				t.Fatal(err)
			}
			defer kv.Close()
			for i := range acked {
				if _, err := kv.Get("b", fmt.Sprintf("k%02d", i)); err != nil {
					t.Errorf("acknowledged k%02d lost: %v", i, err)
				}
			}
			coord, err = OpenCoord(db, CoordConfig{})
			if err != nil {
				t.Fatal(err)
			}
			defer coord.Close()
			if n, err := coord.Counter("c", "n"); err != nil || n < 1 {
				t.Errorf("acknowledged counter = %d, %v; want at least 1", n, err)
			}
		})
	}
}
