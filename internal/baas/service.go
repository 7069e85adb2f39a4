// Package baas is Mote's backend-as-a-service layer: it wires the storage
// engine (internal/store: KV, objects, ephemeral scopes, coordination,
// caches) into the two surfaces functions and users see: host calls made
// by running functions (Service.Call, with per-function permissions) and
// the public HTTP API under /v1/ (Service.Handler). docs/storage.md
// defines every op and route.
package baas

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/mote-run/mote/internal/host"
	"github.com/mote-run/mote/internal/store"
)

// Config configures a Service. Zero fields take defaults.
type Config struct {
	// DB is the shared Pebble database (required); the Service does not
	// close it.
	DB *store.DB
	// Dir is the data directory; objects are stored under Dir/objects
	// unless Objects.Dir says otherwise (required).
	Dir    string
	Logger *slog.Logger

	KV      store.KVConfig
	Objects store.ObjectsConfig
	Coord   store.CoordConfig

	// MaxHostObjectBytes caps an object moved whole through one host call
	// (obj.put, or the bytes of one obj.get); default 8 MiB. Larger
	// objects go through the HTTP API, or obj.get with ranges.
	MaxHostObjectBytes int64
	// DefaultCacheBytes is a function's cache budget when its Caller does
	// not set one (default 16 MiB).
	DefaultCacheBytes int64
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Objects.Dir == "" && c.Dir != "" {
		c.Objects.Dir = filepath.Join(c.Dir, "objects")
	}
	if c.KV.Logger == nil {
		c.KV.Logger = c.Logger.With("part", "kv")
	}
	if c.Objects.Logger == nil {
		c.Objects.Logger = c.Logger.With("part", "objects")
	}
	if c.MaxHostObjectBytes == 0 {
		c.MaxHostObjectBytes = 8 << 20
	}
	if c.DefaultCacheBytes == 0 {
		c.DefaultCacheBytes = 16 << 20
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.DB == nil:
		return errors.New("baas: Config.DB is required")
	case c.Dir == "" && c.Objects.Dir == "":
		return errors.New("baas: Config.Dir is required")
	case c.MaxHostObjectBytes < 0 || c.DefaultCacheBytes < 0:
		return errors.New("baas: limits must not be negative")
	}
	if err := c.KV.Validate(); err != nil {
		return err
	}
	if err := c.Coord.Validate(); err != nil {
		return err
	}
	return nil
}

// Service is the BaaS layer of one node.
type Service struct {
	cfg     Config
	log     *slog.Logger
	kv      *store.KV
	eph     *store.Ephemeral
	obj     *store.Objects
	coord   *store.Coord
	changes *store.ChangeLog

	mu     sync.Mutex
	caches map[string]*fnCache // per-function caches, by function name
}

type fnCache struct {
	lru    *store.LRU
	budget int64
}

// New opens the BaaS layer on cfg.DB and starts its expiry sweeper.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	// One change log for KV and objects: trigger subscriptions read it.
	var now func() time.Time
	if cfg.KV.Clock != nil {
		now = cfg.KV.Clock.Now
	}
	changes, err := store.OpenChangeLog(cfg.DB, now)
	if err != nil {
		return nil, err
	}
	cfg.KV.Changes, cfg.Objects.Changes = changes, changes
	kv, err := store.OpenKV(cfg.DB, cfg.KV)
	if err != nil {
		return nil, err
	}
	obj, err := store.OpenObjects(cfg.DB, cfg.Objects)
	if err != nil {
		kv.Close()
		return nil, err
	}
	coord, err := store.OpenCoord(cfg.DB, cfg.Coord)
	if err != nil {
		kv.Close()
		obj.Close()
		return nil, err
	}
	return &Service{
		cfg: cfg, log: cfg.Logger, kv: kv, eph: kv.Ephemeral(), obj: obj, coord: coord, changes: changes,
		caches: map[string]*fnCache{},
	}, nil
}

// Close wakes blocked waiters with errs.Unavailable, stops the sweeper and
// refuses later calls. It does not close the DB.
func (s *Service) Close() error {
	return errors.Join(s.coord.Close(), s.obj.Close(), s.kv.Close())
}

// KV returns the key-value store.
func (s *Service) KV() *store.KV { return s.kv }

// Objects returns the object store.
func (s *Service) Objects() *store.Objects { return s.obj }

// Changes returns the log of the writes to watched buckets.
func (s *Service) Changes() *store.ChangeLog { return s.changes }

// Coord returns the coordination primitives.
func (s *Service) Coord() *store.Coord { return s.coord }

// Ephemeral returns the scoped ephemeral store.
func (s *Service) Ephemeral() *store.Ephemeral { return s.eph }

// EndScope deletes the ephemeral data of the invocation tree rooted at
// root. The flow engine calls it when the tree completes.
func (s *Service) EndScope(root string) error { return s.eph.EndScope(root) }

// Host returns the host-call surface of an invocation made by who, for a
// runtime that wants a host.Host.
func (s *Service) Host(who Caller) host.Host {
	return host.Func(func(ctx context.Context, op string, args [][]byte) ([]byte, error) {
		return s.Call(ctx, who, op, args)
	})
}

// DropCache frees a function's cache (when the function is removed).
func (s *Service) DropCache(function string) {
	s.mu.Lock()
	delete(s.caches, function)
	s.mu.Unlock()
}

// functionCache returns who's cache, created with (or resized to) the
// budget of its current config.
func (s *Service) functionCache(who *Caller) *store.LRU {
	budget := who.CacheBytes
	if budget == 0 {
		budget = s.cfg.DefaultCacheBytes
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.caches[who.Function]
	if c == nil {
		c = &fnCache{lru: store.NewLRU(budget, 1), budget: budget}
		s.caches[who.Function] = c
	} else if c.budget != budget {
		c.lru.SetBudget(budget)
		c.budget = budget
	}
	return c.lru
}

// Stats are the BaaS layer's counters.
type Stats struct {
	KVCache        store.CacheStats            `json:"kv_cache"`
	FunctionCaches map[string]store.CacheStats `json:"function_caches"`
}

// Stats returns the read cache's and the function caches' counters.
func (s *Service) Stats() Stats {
	st := Stats{KVCache: s.kv.CacheStats(), FunctionCaches: map[string]store.CacheStats{}}
	s.mu.Lock()
	for fn, c := range s.caches {
		st.FunctionCaches[fn] = c.lru.Stats()
	}
	s.mu.Unlock()
	return st
}
