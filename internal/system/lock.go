package system

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// ErrDataDirInUse is returned by Open when another process holds the
// data directory.
var ErrDataDirInUse = errors.New("system: data directory in use")

// lockDataDir takes DataDir/mote.lock, a lock that holds its owner's
// PID, so that a second server on the same data directory says who has
// it instead of Pebble's "resource temporarily unavailable". The lock
// (flock) goes with the process, even killed.
func lockDataDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "mote.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			if pid, perr := strconv.Atoi(string(bytes.TrimSpace(b[:n]))); perr == nil {
				return nil, fmt.Errorf("%w: %s is in use by PID %d (another mote serve?)", ErrDataDirInUse, dir, pid)
			}
			return nil, fmt.Errorf("%w: %s is in use by another process", ErrDataDirInUse, dir)
		}
		return nil, fmt.Errorf("system: locking %s: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}
