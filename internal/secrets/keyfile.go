package secrets

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/mote-run/mote/internal/errs"
)

// readKey reads a 256-bit key from path: 64 hex digits (what createKey
// writes, with an optional newline) or 32 raw bytes. A key file that group
// or others may read is refused, as ssh refuses such a private key: the
// key opens every secret.
func readKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, keyErr("secrets key file %s is not a regular file", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, keyErr("secrets key file %s is readable by others (mode %04o): chmod 600 it", path, st.Mode().Perm())
	}
	b := make([]byte, 256)
	n, _ := f.Read(b)
	b = b[:n]
	if n == chacha20poly1305.KeySize {
		return b, nil
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != chacha20poly1305.KeySize {
		return nil, keyErr("secrets key file %s does not hold a 256-bit key (64 hex digits or 32 bytes)", path)
	}
	return key, nil
}

// createKey writes a new random key to path, mode 0600, failing if the
// file exists: a key is never overwritten.
func createKey(path string) ([]byte, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	key := make([]byte, chacha20poly1305.KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	_, err = f.WriteString(hex.EncodeToString(key) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return key, nil
}

func keyErr(format string, a ...any) error {
	return errs.Wrap(errs.Unavailable, ErrKeyFile, fmt.Sprintf(format, a...))
}

func notExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
