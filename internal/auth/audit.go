package auth

import (
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/mote-run/mote/internal/store"
)

// Entry is one management action in the audit log.
type Entry struct {
	Time    time.Time `json:"time"`
	Who     string    `json:"who"`                // Principal.Who
	KeyID   string    `json:"key_id,omitempty"`   // the key's, when a key acted
	KeyName string    `json:"key_name,omitempty"` // its name then
	Action  string    `json:"action"`             // e.g. function.deploy, key.revoke, secret.set
	Target  string    `json:"target,omitempty"`   // the function, key or secret acted on
	Status  int       `json:"status"`             // the HTTP status answered
	Client  string    `json:"client,omitempty"`   // the client's address
}

// Audit retention defaults.
const (
	DefaultAuditMaxEntries = 100_000
	DefaultAuditMaxAge     = 90 * 24 * time.Hour
)

// AuditConfig configures an Audit log.
type AuditConfig struct {
	// MaxEntries is how many entries are kept; older ones are deleted as
	// new ones are written. Default DefaultAuditMaxEntries.
	MaxEntries int
	// MaxAge is how long an entry is kept. Default DefaultAuditMaxAge.
	MaxAge time.Duration
	// Now is the clock; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Audit is the audit log of management actions, stored under
// store.PrefixAuth in time order, written synced.
type Audit struct {
	db  *store.DB
	cfg AuditConfig

	mu    sync.Mutex // orders writes and holds count
	last  int64      // the last entry's key time, unix nanoseconds
	count int
}

func auditPrefix() []byte { return []byte(store.PrefixAuth + "log/") }

// auditKey orders entries by time: the prefix, then unix nanoseconds,
// big-endian (no two entries share one: Record makes each later than the
// last).
func auditKey(ns int64) []byte {
	return binary.BigEndian.AppendUint64(auditPrefix(), uint64(ns))
}

// OpenAudit opens the audit log in db.
func OpenAudit(db *store.DB, cfg AuditConfig) (*Audit, error) {
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultAuditMaxEntries
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultAuditMaxAge
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Audit{db: db, cfg: cfg}
	prefix := auditPrefix()
	err := db.Scan(prefix, func(key, _ []byte) bool {
		a.count++
		if len(key) == len(prefix)+8 {
			a.last = int64(binary.BigEndian.Uint64(key[len(prefix):]))
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Record writes e (its Time set to now) and trims the log to its
// retention. A failure to write is logged, not returned: the action it
// records has already happened, and its caller's answer stands.
func (a *Audit) Record(e Entry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.cfg.Now()
	ns := max(now.UnixNano(), a.last+1)
	e.Time = time.Unix(0, ns).UTC()
	b, err := json.Marshal(e)
	if err == nil {
		err = a.db.Set(auditKey(ns), b, true)
	}
	if err != nil {
		a.cfg.Logger.Error("audit: entry not written", "action", e.Action, "target", e.Target, "who", e.Who, "err", err)
		return
	}
	a.last = ns
	a.count++
	a.trim(now)
}

// trim deletes the entries past the retention, oldest first.
func (a *Audit) trim(now time.Time) {
	cutoff := now.Add(-a.cfg.MaxAge).UnixNano()
	prefix := auditPrefix()
	var old [][]byte
	a.db.Scan(prefix, func(key, _ []byte) bool {
		if a.count-len(old) <= a.cfg.MaxEntries && (len(key) != len(prefix)+8 || int64(binary.BigEndian.Uint64(key[len(prefix):])) >= cutoff) {
			return false
		}
		old = append(old, append([]byte(nil), key...))
		return true
	})
	for _, k := range old {
		if err := a.db.Delete(k, false); err != nil {
			a.cfg.Logger.Warn("audit: trimming", "err", err)
			return
		}
		a.count--
	}
}

// MaxList is the most entries List returns at once.
const MaxList = 1000

// List returns up to limit entries (default 100, at most MaxList) in time
// order: the first ones after since, or, when since is zero, the latest.
func (a *Audit) List(since time.Time, limit int) ([]Entry, error) {
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, MaxList)
	prefix := auditPrefix()
	var out []Entry
	var bad error
	keep := func(val []byte) bool {
		var e Entry
		if err := json.Unmarshal(val, &e); err != nil {
			bad = err
			return false
		}
		out = append(out, e)
		return true
	}
	var err error
	if !since.IsZero() {
		err = a.db.Range(auditKey(since.UnixNano()+1), store.PrefixEnd(prefix), false, func(_, val []byte) bool {
			return keep(val) && len(out) < limit
		})
	} else {
		err = a.db.Range(prefix, store.PrefixEnd(prefix), true, func(_, val []byte) bool {
			return keep(val) && len(out) < limit
		})
		slices.Reverse(out)
	}
	if err == nil {
		err = bad
	}
	return out, err
}

// NewEntry is the entry for an action p took on target, answered with
// status, from the client at address client.
func NewEntry(p Principal, action, target string, status int, client string) Entry {
	e := Entry{Who: p.Who(), Action: action, Target: target, Status: status, Client: client}
	if k := p.Key(); k != nil {
		e.KeyID, e.KeyName = k.ID, k.Name
	}
	return e
}
