package store

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mote-run/mote/internal/errs"
)

// ObjectsConfig configures Objects.
type ObjectsConfig struct {
	// Dir holds the object data files (required).
	Dir string
	// MaxObjectBytes caps one object (default 64 GiB).
	MaxObjectBytes int64
	Now            func() time.Time
	Logger         *slog.Logger
	// Changes, if set, logs the puts and deletes in watched buckets in
	// the metadata's own commits (changes.go).
	Changes *ChangeLog
}

// WithDefaults returns c with zero fields set to their defaults.
func (c ObjectsConfig) WithDefaults() ObjectsConfig {
	if c.MaxObjectBytes == 0 {
		c.MaxObjectBytes = 64 << 30
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c ObjectsConfig) Validate() error {
	if c.Dir == "" {
		return errors.New("store: objects need a Dir")
	}
	if c.MaxObjectBytes < 0 {
		return errors.New("store: MaxObjectBytes must not be negative")
	}
	return nil
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Bucket      string    `json:"bucket"`
	Key         string    `json:"key"`
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"` // hex of the content's SHA-256
	ContentType string    `json:"content_type,omitempty"`
	Modified    time.Time `json:"modified"`
	// id names the data file; it is never derived from the key, so no key
	// can reach outside the data directory.
	id string
}

// objectMeta is ObjectInfo as stored in Pebble.
type objectMeta struct {
	ID          string    `json:"id"`
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"`
	ContentType string    `json:"ct,omitempty"`
	Modified    time.Time `json:"mod"`
}

// Objects stores large values: the bytes stream to a file in Dir (written
// to a temporary file, fsynced, renamed into place), hashed with SHA-256
// as they pass, and only then is the metadata (size, hash, file id)
// committed durably to Pebble. A reader opens the file and reads it in
// pieces, so no object is ever held whole in memory. Replacing or deleting
// an object removes its old file after the metadata commit; a reader that
// already holds the file open keeps reading the old bytes.
type Objects struct {
	db     *DB
	cfg    ObjectsConfig
	seed   maphash.Seed
	locks  [64]sync.Mutex
	closed atomic.Bool
}

// Object is an open object: an io.ReadSeeker and io.ReaderAt over its
// bytes. Close it when done.
type Object struct {
	*os.File
	Info ObjectInfo
}

// OpenObjects opens the object store, creating Dir, and removes leftovers
// of writes a crash interrupted: temporary files, and data files that no
// metadata names.
func OpenObjects(db *DB, cfg ObjectsConfig) (*Objects, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	o := &Objects{db: db, cfg: cfg, seed: maphash.MakeSeed()}
	if err := os.MkdirAll(o.tmpDir(), 0o700); err != nil {
		return nil, fmt.Errorf("store: objects dir: %w", err)
	}
	if err := os.Chmod(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: objects dir: %w", err)
	}
	if err := o.cleanup(); err != nil {
		return nil, err
	}
	return o, nil
}

// Close marks the store closed; later calls fail with errs.Unavailable.
func (o *Objects) Close() error {
	o.closed.Store(true)
	return nil
}

func (o *Objects) tmpDir() string { return filepath.Join(o.cfg.Dir, "tmp") }

func (o *Objects) dataPath(id string) string {
	return filepath.Join(o.cfg.Dir, id[:2], id)
}

func objKey(bucket, key string) []byte {
	k := make([]byte, 0, len(PrefixObjects)+len(bucket)+1+len(key))
	k = append(k, PrefixObjects...)
	k = append(k, bucket...)
	k = append(k, '/')
	return append(k, key...)
}

func (o *Objects) check(bucket, key string) error {
	if o.closed.Load() {
		return closedErr()
	}
	if err := ValidBucket(bucket); err != nil {
		return err
	}
	return ValidKey(key)
}

func (o *Objects) lockFor(k []byte) *sync.Mutex {
	return &o.locks[maphash.Bytes(o.seed, k)%uint64(len(o.locks))]
}

// Put streams r into the object bucket/key, replacing any earlier one, and
// returns its info. Nothing is visible until the whole stream is stored;
// a failed or oversized put leaves the old object as it was.
func (o *Objects) Put(bucket, key string, r io.Reader, contentType string) (ObjectInfo, error) {
	if err := o.check(bucket, key); err != nil {
		return ObjectInfo{}, err
	}
	if len(contentType) > 255 || validChars(contentType) != nil {
		return ObjectInfo{}, errs.E(errs.BadRequest, "bad content type")
	}
	id := newObjectID()
	f, err := os.CreateTemp(o.tmpDir(), id+".*")
	if err != nil {
		return ObjectInfo{}, internalErr(err, "objects: create failed")
	}
	tmp := f.Name()
	committed := false
	defer func() {
		if !committed {
			f.Close()
			os.Remove(tmp)
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, o.cfg.MaxObjectBytes+1))
	if err != nil {
		return ObjectInfo{}, errs.Wrap(errs.BadRequest, err, "objects: reading the object failed")
	}
	if n > o.cfg.MaxObjectBytes {
		return ObjectInfo{}, errs.Wrap(errs.PayloadTooLarge, ErrTooLarge,
			fmt.Sprintf("object exceeds the %d-byte limit", o.cfg.MaxObjectBytes))
	}
	if err := f.Sync(); err != nil {
		return ObjectInfo{}, internalErr(err, "objects: sync failed")
	}
	if err := f.Close(); err != nil {
		return ObjectInfo{}, internalErr(err, "objects: close failed")
	}
	final := o.dataPath(id)
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return ObjectInfo{}, internalErr(err, "objects: mkdir failed")
	}
	if err := os.Rename(tmp, final); err != nil {
		return ObjectInfo{}, internalErr(err, "objects: rename failed")
	}
	committed = true
	if err := syncDir(filepath.Dir(final)); err != nil {
		os.Remove(final)
		return ObjectInfo{}, internalErr(err, "objects: sync dir failed")
	}
	meta := objectMeta{ID: id, Size: n, SHA256: hex.EncodeToString(h.Sum(nil)), ContentType: contentType,
		Modified: o.cfg.Now().UTC().Truncate(time.Millisecond)}
	raw, _ := json.Marshal(meta)
	k := objKey(bucket, key)
	mu := o.lockFor(k)
	mu.Lock()
	old, oldErr := o.meta(k)
	err = o.cfg.Changes.write(o.db, k, raw, false, true, Change{Op: "put", Size: n, SHA256: meta.SHA256})
	mu.Unlock()
	if err != nil {
		os.Remove(final)
		return ObjectInfo{}, internalErr(err, "objects: metadata write failed")
	}
	if oldErr == nil {
		o.removeData(old.ID)
	}
	return info(bucket, key, meta), nil
}

func info(bucket, key string, m objectMeta) ObjectInfo {
	return ObjectInfo{Bucket: bucket, Key: key, Size: m.Size, SHA256: m.SHA256, ContentType: m.ContentType,
		Modified: m.Modified, id: m.ID}
}

func (o *Objects) meta(k []byte) (objectMeta, error) {
	raw, err := o.db.Get(k)
	if errors.Is(err, ErrNotFound) {
		return objectMeta{}, notFound("object")
	}
	if err != nil {
		return objectMeta{}, internalErr(err, "objects: metadata read failed")
	}
	var m objectMeta
	if err := json.Unmarshal(raw, &m); err != nil || len(m.ID) < 2 {
		return objectMeta{}, internalErr(fmt.Errorf("bad metadata at %q: %v", k, err), "objects: corrupt metadata")
	}
	return m, nil
}

// Head returns the info of bucket/key.
func (o *Objects) Head(bucket, key string) (ObjectInfo, error) {
	if err := o.check(bucket, key); err != nil {
		return ObjectInfo{}, err
	}
	m, err := o.meta(objKey(bucket, key))
	if err != nil {
		return ObjectInfo{}, err
	}
	return info(bucket, key, m), nil
}

// Open opens bucket/key for reading (whole, by Seek, or by ReadAt ranges).
func (o *Objects) Open(bucket, key string) (*Object, error) {
	if err := o.check(bucket, key); err != nil {
		return nil, err
	}
	k := objKey(bucket, key)
	// A concurrent replace can remove the file between reading the
	// metadata and opening it; the metadata is then new, so read it again.
	for range 3 {
		m, err := o.meta(k)
		if err != nil {
			return nil, err
		}
		f, err := os.Open(o.dataPath(m.ID))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, internalErr(err, "objects: open failed")
		}
		return &Object{File: f, Info: info(bucket, key, m)}, nil
	}
	return nil, errs.E(errs.Conflict, "object changed while opening; retry")
}

// ReadRange returns a reader of length bytes of bucket/key from offset
// (length < 0: to the end). Close it when done.
func (o *Objects) ReadRange(bucket, key string, offset, length int64) (io.ReadCloser, ObjectInfo, error) {
	obj, err := o.Open(bucket, key)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	size := obj.Info.Size
	if offset < 0 || offset > size {
		obj.Close()
		return nil, ObjectInfo{}, errs.E(errs.BadRequest, "range offset %d is outside the object (size %d)", offset, size)
	}
	if length < 0 || offset+length > size {
		length = size - offset
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(obj.File, offset, length), obj.File}, obj.Info, nil
}

// Delete removes bucket/key; a missing object is errs.NotFound.
func (o *Objects) Delete(bucket, key string) error {
	if err := o.check(bucket, key); err != nil {
		return err
	}
	k := objKey(bucket, key)
	mu := o.lockFor(k)
	mu.Lock()
	m, err := o.meta(k)
	if err == nil {
		err = o.cfg.Changes.write(o.db, k, nil, true, true, Change{Op: "delete"})
		if err != nil {
			err = internalErr(err, "objects: delete failed")
		}
	}
	mu.Unlock()
	if err != nil {
		return err
	}
	o.removeData(m.ID)
	return nil
}

// List pages through the objects of bucket whose keys start with prefix.
func (o *Objects) List(bucket, prefix, cursor string, limit int) ([]ObjectInfo, string, error) {
	if o.closed.Load() {
		return nil, "", closedErr()
	}
	if err := ValidBucket(bucket); err != nil {
		return nil, "", err
	}
	base := objKey(bucket, "")
	page, err := listRecords(o.db, base, prefix, cursor, limit, 0, false)
	if err != nil {
		return nil, "", err
	}
	out := make([]ObjectInfo, 0, len(page.Keys))
	for _, key := range page.Keys {
		m, err := o.meta(objKey(bucket, key))
		if errs.CodeOf(err) == errs.NotFound {
			continue // deleted since the listing
		}
		if err != nil {
			return nil, "", err
		}
		out = append(out, info(bucket, key, m))
	}
	return out, page.Next, nil
}

func (o *Objects) removeData(id string) {
	if err := os.Remove(o.dataPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		o.cfg.Logger.Warn("objects: removing replaced data failed", "id", id, "err", err)
	}
}

// cleanup removes temporary files and data files no metadata refers to:
// what a crash between writing a file and committing its metadata leaves.
func (o *Objects) cleanup() error {
	tmps, err := os.ReadDir(o.tmpDir())
	if err != nil {
		return fmt.Errorf("store: objects tmp dir: %w", err)
	}
	for _, e := range tmps {
		os.Remove(filepath.Join(o.tmpDir(), e.Name()))
	}
	live := map[string]bool{}
	err = o.db.Scan([]byte(PrefixObjects), func(_, v []byte) bool {
		var m objectMeta
		if json.Unmarshal(v, &m) == nil {
			live[m.ID] = true
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("store: objects scan: %w", err)
	}
	dirs, err := os.ReadDir(o.cfg.Dir)
	if err != nil {
		return fmt.Errorf("store: objects dir: %w", err)
	}
	for _, d := range dirs {
		if !d.IsDir() || len(d.Name()) != 2 {
			continue
		}
		files, err := os.ReadDir(filepath.Join(o.cfg.Dir, d.Name()))
		if err != nil {
			return fmt.Errorf("store: objects dir: %w", err)
		}
		for _, f := range files {
			if !live[f.Name()] && strings.HasPrefix(f.Name(), d.Name()) {
				os.Remove(filepath.Join(o.cfg.Dir, d.Name(), f.Name()))
			}
		}
	}
	return nil
}

func newObjectID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
