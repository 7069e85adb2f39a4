// Package secrets keeps named secret values encrypted at rest in Mote's
// store, for functions whose config grants them.
//
// Each value is sealed with XChaCha20-Poly1305 under one 256-bit key, with
// a fresh random 192-bit nonce per write and the secret's name as
// associated data, so a sealed value copied under another name does not
// open. The key lives in a file outside the store (default
// <data>/secrets.key, created 0600 on first start). The store also holds a
// check value sealed under the key: a server started with another key file
// fails at once with a clear error instead of failing each function later,
// and nothing is rewritten, so restarting with the right file loses
// nothing.
//
// Values leave this package only through Value, which the system calls to
// build a function's environment; nothing here, and no API above it,
// returns them otherwise.
package secrets

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/store"
)

// MaxValue is the largest secret value, in bytes: secrets travel as
// environment variables, and Linux caps one at 128 KiB.
const MaxValue = 64 << 10

// Keys under store.PrefixSecrets.
const (
	keyRecord = store.PrefixSecrets + "s/" // s/{name} → record (JSON)
	keyCheck  = store.PrefixSecrets + "check"
)

// checkAD and checkText make the key check value: what the key must open.
const (
	checkAD   = "mote secrets key check"
	checkText = "mote secrets v1"
)

var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// ValidName checks a secret name: what an environment variable may be
// called (letters, digits, '_', not starting with a digit; at most 128),
// so a secret is by default injected under its own name.
func ValidName(name string) error {
	if !nameRE.MatchString(name) {
		return errs.Wrap(errs.BadRequest, ErrInvalid, fmt.Sprintf("invalid secret name %q: use 1-128 of A-Z a-z 0-9 _, not starting with a digit", name))
	}
	return nil
}

// Info describes a secret without its value.
type Info struct {
	Name    string    `json:"name"`
	Version int       `json:"version"` // 1 at the first set, +1 per set
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// record is a secret as stored: its Info and its sealed value.
type record struct {
	Info
	Sealed []byte `json:"sealed"` // nonce || ciphertext
}

// Config configures a Store.
type Config struct {
	DB      *store.DB
	KeyFile string           // required
	Now     func() time.Time // default time.Now
}

// Store is the secrets store. Its methods are safe for concurrent use.
type Store struct {
	db   *store.DB
	aead cipher.AEAD
	now  func() time.Time
	mu   sync.Mutex // serialises Set and Delete (read-modify-write)
}

// Open returns the store over cfg.DB, reading its key from cfg.KeyFile.
// When the store holds no secrets yet and the file does not exist, a new
// key is written there (0600). A key file that is missing while secrets
// exist, malformed, readable by others, or not the key the secrets were
// sealed with is an error that names the file; nothing is changed.
func Open(cfg Config) (*Store, error) {
	if cfg.DB == nil || cfg.KeyFile == "" {
		return nil, errors.New("secrets: Config.DB and Config.KeyFile are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	check, err := cfg.DB.Get([]byte(keyCheck))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	sealedBefore := err == nil
	if !sealedBefore {
		// A store written before the check value existed, or whose check
		// was lost, may still hold secrets.
		sealedBefore = anyRecord(cfg.DB)
	}
	key, err := readKey(cfg.KeyFile)
	switch {
	case notExist(err) && sealedBefore:
		return nil, keyErr("secrets key file %s does not exist, but this data directory holds secrets sealed with a key: restore the file, or pass the one in use with --secrets-key-file", cfg.KeyFile)
	case notExist(err):
		if key, err = createKey(cfg.KeyFile); err != nil {
			return nil, fmt.Errorf("secrets: creating key file: %w", err)
		}
	case err != nil:
		var e *errs.Error
		if errors.As(err, &e) {
			return nil, err
		}
		return nil, keyErr("secrets key file %s: %v", cfg.KeyFile, err)
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	s := &Store{db: cfg.DB, aead: aead, now: cfg.Now}
	if check != nil {
		if _, err := s.open(check, checkAD); err != nil {
			return nil, s.wrongKey(cfg.KeyFile)
		}
		return s, nil
	}
	if sealedBefore {
		if err := s.openAny(); err != nil {
			return nil, s.wrongKey(cfg.KeyFile)
		}
	}
	if err := cfg.DB.Set([]byte(keyCheck), s.seal([]byte(checkText), checkAD), true); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) wrongKey(path string) error {
	return errs.Wrap(errs.Unavailable, ErrWrongKey, fmt.Sprintf("secrets key file %s is not the key this data directory's secrets were sealed with; nothing was changed: start again with the right --secrets-key-file", path))
}

func anyRecord(db *store.DB) bool {
	found := false
	_ = db.Scan([]byte(keyRecord), func(_, _ []byte) bool { found = true; return false })
	return found
}

// openAny opens the first stored secret, to check the key.
func (s *Store) openAny() error {
	var err error
	scanErr := s.db.Scan([]byte(keyRecord), func(_, v []byte) bool {
		var r record
		if err = json.Unmarshal(v, &r); err == nil {
			_, err = s.open(r.Sealed, r.Name)
		}
		return false
	})
	return errors.Join(scanErr, err)
}

func (s *Store) seal(plain []byte, ad string) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic("secrets: no randomness: " + err.Error()) // crypto/rand does not fail on Linux
	}
	return s.aead.Seal(nonce, nonce, plain, []byte(ad))
}

func (s *Store) open(sealed []byte, ad string) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, ErrWrongKey
	}
	return s.aead.Open(nil, sealed[:n], sealed[n:], []byte(ad))
}

func (s *Store) get(name string) (*record, error) {
	b, err := s.db.Get([]byte(keyRecord + name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, errs.Wrap(errs.NotFound, ErrNotFound, fmt.Sprintf("secret %q does not exist: set it with mote secret set %s", name, name))
	}
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("secrets: record %q: %w", name, err)
	}
	return &r, nil
}

// Set stores value as name's secret (a new version if it exists) and
// returns its Info. The value is sealed before it reaches the store; the
// write is synced.
func (s *Store) Set(name string, value []byte) (Info, error) {
	if err := ValidName(name); err != nil {
		return Info{}, err
	}
	switch {
	case len(value) == 0:
		return Info{}, errs.Wrap(errs.BadRequest, ErrInvalid, "secret value is empty")
	case len(value) > MaxValue:
		return Info{}, errs.Wrap(errs.PayloadTooLarge, ErrInvalid, fmt.Sprintf("secret value of %d bytes is over the %d-byte limit", len(value), MaxValue))
	case strings.IndexByte(string(value), 0) >= 0:
		return Info{}, errs.Wrap(errs.BadRequest, ErrInvalid, "secret value holds a NUL byte, which an environment variable cannot")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UTC()
	r := record{Info: Info{Name: name, Version: 1, Created: now, Updated: now}}
	if old, err := s.get(name); err == nil {
		r.Version, r.Created = old.Version+1, old.Created
	} else if errs.CodeOf(err) != errs.NotFound {
		return Info{}, err
	}
	r.Sealed = s.seal(value, name)
	b, err := json.Marshal(r)
	if err != nil {
		return Info{}, err
	}
	if err := s.db.Set([]byte(keyRecord+name), b, true); err != nil {
		return Info{}, err
	}
	return r.Info, nil
}

// Value returns name's value and Info. Only the system calls it, to build
// the environment of a function granted the secret.
func (s *Store) Value(name string) ([]byte, Info, error) {
	r, err := s.get(name)
	if err != nil {
		return nil, Info{}, err
	}
	v, err := s.open(r.Sealed, r.Name)
	if err != nil || r.Name != name {
		return nil, Info{}, errs.Wrap(errs.Internal, ErrWrongKey, fmt.Sprintf("secret %q does not open under the key in use", name))
	}
	return v, r.Info, nil
}

// Info returns name's Info.
func (s *Store) Info(name string) (Info, error) {
	r, err := s.get(name)
	if err != nil {
		return Info{}, err
	}
	return r.Info, nil
}

// List returns every secret's Info, by name.
func (s *Store) List() ([]Info, error) {
	var out []Info
	var bad error
	err := s.db.Scan([]byte(keyRecord), func(k, v []byte) bool {
		var r record
		if err := json.Unmarshal(v, &r); err != nil {
			bad = fmt.Errorf("secrets: record %q: %w", k, err)
			return false
		}
		out = append(out, r.Info)
		return true
	})
	if err = errors.Join(err, bad); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Delete removes name's secret.
func (s *Store) Delete(name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.get(name); err != nil {
		return err
	}
	return s.db.Delete([]byte(keyRecord+name), true)
}
