package auth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/store"
)

// TokenPrefix starts every key's token.
const TokenPrefix = "mote_"

const (
	idBytes     = 6  // a key's id: 12 hex digits, public
	secretBytes = 32 // a key's secret: 256 random bits
	// lastUsedEvery is how stale a key's stored last use may be: a check
	// writes it (without sync) at most this often per key.
	lastUsedEvery = time.Minute
	// MaxKeys bounds the number of keys a server holds.
	MaxKeys = 10000
)

// Key is an API key as listed: never its secret.
type Key struct {
	ID       string    `json:"id"`
	Name     string    `json:"name,omitempty"`
	Scopes   []Scope   `json:"scopes"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires,omitzero"`
	LastUsed time.Time `json:"last_used,omitzero"`
}

// Allows reports whether one of the key's scopes grants n.
func (k *Key) Allows(n Need) bool {
	for _, s := range k.Scopes {
		if s.Allows(n) {
			return true
		}
	}
	return false
}

// record is a key as stored: the key and the SHA-256 of its secret.
type record struct {
	Key
	Hash string `json:"sha256"` // hex
}

// entry is a key held in memory.
type entry struct {
	key     Key // LastUsed is kept in used instead
	hash    [sha256.Size]byte
	expires int64        // unix nanoseconds; 0 never
	used    atomic.Int64 // last use, unix nanoseconds
	stored  atomic.Int64 // the last use written to the store
}

// KeysConfig configures Keys.
type KeysConfig struct {
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Keys is the set of API keys: stored under store.PrefixAuth, held in
// memory for checks, which read one immutable map with an atomic load.
type Keys struct {
	db  *store.DB
	now func() time.Time

	mu   sync.Mutex // serializes Create, Revoke and last-use writes
	keys atomic.Pointer[map[string]*entry]
}

func keyPrefix() []byte       { return []byte(store.PrefixAuth + "k/") }
func keyKey(id string) []byte { return []byte(store.PrefixAuth + "k/" + id) }

// OpenKeys loads the keys stored in db.
func OpenKeys(db *store.DB, cfg KeysConfig) (*Keys, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	k := &Keys{db: db, now: cfg.Now}
	m := map[string]*entry{}
	var bad error
	err := db.Scan(keyPrefix(), func(key, val []byte) bool {
		var r record
		if err := json.Unmarshal(val, &r); err != nil {
			bad = fmt.Errorf("auth: key record %q: %w", key, err)
			return false
		}
		e, err := newEntry(r)
		if err != nil {
			bad = err
			return false
		}
		m[r.ID] = e
		return true
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return nil, err
	}
	k.keys.Store(&m)
	return k, nil
}

func newEntry(r record) (*entry, error) {
	e := &entry{key: r.Key}
	if n, err := hex.Decode(e.hash[:], []byte(r.Hash)); err != nil || n != sha256.Size {
		return nil, fmt.Errorf("auth: key %s: bad stored hash", r.ID)
	}
	if !r.Expires.IsZero() {
		e.expires = r.Expires.UnixNano()
	}
	if !r.LastUsed.IsZero() {
		e.used.Store(r.LastUsed.UnixNano())
		e.stored.Store(r.LastUsed.UnixNano())
	}
	e.key.LastUsed = time.Time{}
	return e, nil
}

// Len returns the number of keys (expired ones included).
func (k *Keys) Len() int { return len(*k.keys.Load()) }

// Create makes a key with the given scopes, valid for ttl (0: until
// revoked), and returns it with its token, which is shown once: only its
// hash is stored.
func (k *Keys) Create(name string, scopes []string, ttl time.Duration) (Key, string, error) {
	if len(scopes) == 0 {
		return Key{}, "", errs.E(errs.BadRequest, "a key needs at least one scope")
	}
	if len(name) > 200 {
		return Key{}, "", errs.E(errs.BadRequest, "key name is over 200 bytes")
	}
	if ttl < 0 {
		return Key{}, "", errs.E(errs.BadRequest, "expiry must not be negative")
	}
	key := Key{Name: name, Created: k.now().UTC()}
	for _, s := range scopes {
		sc, err := ParseScope(s)
		if err != nil {
			return Key{}, "", err
		}
		if !slices.Contains(key.Scopes, sc) {
			key.Scopes = append(key.Scopes, sc)
		}
	}
	if ttl > 0 {
		key.Expires = key.Created.Add(ttl)
	}
	var secret [secretBytes]byte
	rand.Read(secret[:])
	secretText := base64.RawURLEncoding.EncodeToString(secret[:])
	sum := sha256.Sum256([]byte(secretText))

	k.mu.Lock()
	defer k.mu.Unlock()
	old := *k.keys.Load()
	if len(old) >= MaxKeys {
		return Key{}, "", errs.E(errs.LimitExceeded, "this server holds %d keys already: revoke some first", len(old))
	}
	for {
		var id [idBytes]byte
		rand.Read(id[:])
		key.ID = hex.EncodeToString(id[:])
		if old[key.ID] == nil {
			break
		}
	}
	r := record{Key: key, Hash: hex.EncodeToString(sum[:])}
	b, err := json.Marshal(r)
	if err != nil {
		return Key{}, "", err
	}
	if err := k.db.Set(keyKey(key.ID), b, true); err != nil {
		return Key{}, "", err
	}
	e, err := newEntry(r)
	if err != nil {
		return Key{}, "", err
	}
	m := maps.Clone(old)
	m[key.ID] = e
	k.keys.Store(&m)
	return key, TokenPrefix + key.ID + "_" + secretText, nil
}

// Revoke deletes the key with id: its token is refused from then on.
func (k *Keys) Revoke(id string) (Key, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	old := *k.keys.Load()
	e := old[id]
	if e == nil {
		return Key{}, errs.Wrap(errs.NotFound, ErrKeyNotFound, fmt.Sprintf("no key with id %q", id))
	}
	if err := k.db.Delete(keyKey(id), true); err != nil {
		return Key{}, err
	}
	m := maps.Clone(old)
	delete(m, id)
	k.keys.Store(&m)
	return e.listed(), nil
}

// List returns every key, oldest first, without secrets.
func (k *Keys) List() []Key {
	m := *k.keys.Load()
	out := make([]Key, 0, len(m))
	for _, e := range m {
		out = append(out, e.listed())
	}
	slices.SortFunc(out, func(a, b Key) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return bytes.Compare([]byte(a.ID), []byte(b.ID))
	})
	return out
}

func (e *entry) listed() Key {
	k := e.key
	if u := e.used.Load(); u != 0 {
		k.LastUsed = time.Unix(0, u).UTC()
	}
	return k
}

// Check returns the key whose token is tok (the bearer token's bytes),
// or ErrInvalidKey (unknown, revoked or malformed) or ErrExpiredKey. It
// allocates nothing: the gateway's fast path calls it per request.
func (k *Keys) Check(tok []byte) (*Key, error) {
	rest, ok := bytes.CutPrefix(tok, []byte(TokenPrefix))
	if !ok {
		return nil, ErrInvalidKey
	}
	id, secret, ok := bytes.Cut(rest, []byte("_"))
	if !ok {
		return nil, ErrInvalidKey
	}
	e := (*k.keys.Load())[string(id)]
	if e == nil {
		return nil, ErrInvalidKey
	}
	sum := sha256.Sum256(secret)
	if subtle.ConstantTimeCompare(sum[:], e.hash[:]) != 1 {
		return nil, ErrInvalidKey
	}
	now := k.now().UnixNano()
	if e.expires != 0 && now >= e.expires {
		return nil, ErrExpiredKey
	}
	if now-e.used.Load() >= int64(time.Second) {
		e.used.Store(now)
		if now-e.stored.Load() >= int64(lastUsedEvery) {
			k.storeUsed(e, now)
		}
	}
	return &e.key, nil
}

// storeUsed writes a key's last use, without sync (it is a hint), unless
// the key was revoked meanwhile.
func (k *Keys) storeUsed(e *entry, now int64) {
	if !k.mu.TryLock() {
		return // a create or revoke is under way: the next use writes it
	}
	defer k.mu.Unlock()
	if (*k.keys.Load())[e.key.ID] != e {
		return
	}
	r := record{Key: e.listed(), Hash: hex.EncodeToString(e.hash[:])}
	b, err := json.Marshal(r)
	if err != nil {
		return
	}
	if k.db.Set(keyKey(e.key.ID), b, false) == nil {
		e.stored.Store(now)
	}
}
