// Package faultfs is a file system for tests that makes the database's
// write-ahead log fail on demand: its writes, its syncs, or both. It wraps
// Pebble's errorfs (github.com/cockroachdb/pebble/v2/vfs/errorfs) around
// the operating system's file system, so the database's files are real
// and a test can reopen them without faults to see what reached the disk.
// Pass it as store.DBConfig.FS.
package faultfs

import (
	"strings"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// ErrInjected is the error every injected fault returns (errors.Is finds
// it through the store's wrapping).
var ErrInjected = errorfs.ErrInjected

// Faults says which WAL operations fail.
type Faults uint32

const (
	// Syncs fails fsync and fdatasync of WAL files.
	Syncs Faults = 1 << iota
	// Writes fails writes to WAL files.
	Writes
)

// FS is the operating system's file system with WAL faults injected while
// Fail is in effect. Safe for concurrent use.
type FS struct {
	vfs.FS
	faults   atomic.Uint32
	injected atomic.Int64
}

// New returns an FS that injects nothing until Fail.
func New() *FS {
	f := &FS{}
	f.FS = errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(f.maybeError))
	return f
}

// Fail makes the given WAL operations fail from now on.
func (f *FS) Fail(faults Faults) { f.faults.Store(uint32(faults)) }

// Heal stops injecting faults.
func (f *FS) Heal() { f.faults.Store(0) }

// Injected is how many operations have failed so far.
func (f *FS) Injected() int64 { return f.injected.Load() }

func (f *FS) maybeError(op errorfs.Op) error {
	faults := Faults(f.faults.Load())
	if faults == 0 || !strings.HasSuffix(op.Path, ".log") {
		return nil
	}
	switch op.Kind {
	case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
		if faults&Syncs == 0 {
			return nil
		}
	case errorfs.OpFileWrite, errorfs.OpFileWriteAt:
		if faults&Writes == 0 {
			return nil
		}
	default:
		return nil
	}
	f.injected.Add(1)
	return ErrInjected
}
