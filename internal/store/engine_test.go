package store

import (
	"errors"
	"fmt"
	"testing"
)

// testEngine is the conformance check of the Engine contract (engine.go):
// every engine runs it with one line, as the Pebble engine does below.
func testEngine(t *testing.T, open func(t *testing.T) Engine) {
	t.Run("ApplyGetRange", func(t *testing.T) {
		e := open(t)
		b := e.NewBatch(0)
		for i := range 5 {
			b.Set([]byte(fmt.Sprintf("t/%d", i)), []byte(fmt.Sprint(i)))
		}
		b.Delete([]byte("t/1"))
		b.DeleteRange([]byte("t/3"), []byte("t/5"))
		if err := e.Apply(b, true); err != nil {
			t.Fatal(err)
		}
		b.Close()
		var got []string
		if err := e.Range([]byte("t/"), []byte("t0"), false, func(k, v []byte) bool {
			got = append(got, string(k)+"="+string(v))
			return true
		}); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != "[t/0=0 t/2=2]" {
			t.Errorf("Range = %v, want [t/0=0 t/2=2]", got)
		}
		got = nil
		_ = e.Range([]byte("t/"), []byte("t0"), true, func(k, _ []byte) bool {
			got = append(got, string(k))
			return false
		})
		if fmt.Sprint(got) != "[t/2]" {
			t.Errorf("reverse Range stopping at the first = %v, want [t/2]", got)
		}
		v, closer, err := e.Get([]byte("t/2"))
		if err != nil || string(v) != "2" {
			t.Errorf("Get(t/2) = %q, %v", v, err)
		}
		if closer != nil {
			closer.Close()
		}
		if _, _, err := e.Get([]byte("t/1")); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get of a deleted key: %v, want ErrNotFound", err)
		}
	})
	t.Run("BatchEach", func(t *testing.T) {
		e := open(t)
		b := e.NewBatch(0)
		defer b.Close()
		b.Set([]byte("a"), []byte("1"))
		b.Delete([]byte("b"))
		b.DeleteRange([]byte("c"), []byte("d"))
		o := e.NewBatch(0)
		o.Set([]byte("e"), []byte("2"))
		b.Append(o)
		o.Close()
		var got []string
		if err := b.Each(func(op Op, k, v []byte) error {
			got = append(got, fmt.Sprintf("%d:%s:%s", op, k, v))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("[%d:a:1 %d:b: %d:c:d %d:e:2]", OpSet, OpDelete, OpDeleteRange, OpSet)
		if fmt.Sprint(got) != want || b.Count() != 4 {
			t.Errorf("Each = %v (count %d), want %s (4)", got, b.Count(), want)
		}
	})
	t.Run("SyncAndUnsynced", func(t *testing.T) {
		e := open(t)
		if err := e.Sync(); err != nil {
			t.Fatal(err)
		}
		if e.Unsynced() {
			t.Error("Unsynced right after Sync")
		}
		b := e.NewBatch(0)
		b.Set([]byte("k"), []byte("v"))
		if err := e.Apply(b, false); err != nil {
			t.Fatal(err)
		}
		b.Close()
		if !e.Unsynced() {
			t.Error("Unsynced = false after an apply without sync")
		}
		if err := e.Sync(); err != nil {
			t.Fatal(err)
		}
		if e.Unsynced() {
			t.Error("Unsynced after Sync")
		}
		if e.Err() != nil {
			t.Errorf("Err = %v on a healthy engine", e.Err())
		}
	})
}

func TestPebbleEngine(t *testing.T) {
	testEngine(t, func(t *testing.T) Engine {
		e, err := openPebble(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	})
}
