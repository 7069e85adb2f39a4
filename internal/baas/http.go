package baas

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/handler"
	"github.com/mote-run/mote/internal/store"
)

// HTTPPrefixes are the path prefixes Handler serves; the gateway routes
// them to it, behind its authentication and a bucket scope check.
var HTTPPrefixes = []string{"/v1/kv/", "/v1/objects/", "/v1/counters/", "/v1/queues/", "/v1/signals/", "/v1/scopes/", "/v1/baas/"}

// Handler returns the public HTTP API of the BaaS layer (docs/storage.md
// lists the routes). It does no authentication: the gateway mounts it
// behind its own.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, h handler.Func) { mux.Handle(pattern, h) }
	handle("GET /v1/kv/{bucket}", s.httpKVList)
	handle("POST /v1/kv/{bucket}", s.httpKVBatch)
	handle("GET /v1/kv/{bucket}/{key...}", s.httpKVGet)
	handle("HEAD /v1/kv/{bucket}/{key...}", s.httpKVGet)
	handle("PUT /v1/kv/{bucket}/{key...}", s.httpKVPut)
	handle("DELETE /v1/kv/{bucket}/{key...}", s.httpKVDelete)
	handle("POST /v1/kv/{bucket}/{key...}", s.httpKVPost)

	handle("GET /v1/objects/{bucket}", s.httpObjList)
	handle("GET /v1/objects/{bucket}/{key...}", s.httpObjGet) // also serves HEAD
	handle("PUT /v1/objects/{bucket}/{key...}", s.httpObjPut)
	handle("DELETE /v1/objects/{bucket}/{key...}", s.httpObjDelete)

	handle("GET /v1/counters/{bucket}/{name...}", s.httpCounterGet)
	handle("POST /v1/counters/{bucket}/{name...}", s.httpCounterAdd)
	handle("GET /v1/queues/{bucket}/{name...}", s.httpQueueLen)
	handle("POST /v1/queues/{bucket}/{name...}", s.httpQueuePost)
	handle("POST /v1/signals/{bucket}/{name...}", s.httpSignalPublish)
	handle("DELETE /v1/scopes/{root}", s.httpEndScope)
	handle("GET /v1/baas/stats", func(w http.ResponseWriter, r *http.Request) error {
		return writeJSON(w, http.StatusOK, s.Stats())
	})
	handle("/v1/", handler.NotFound)
	return mux
}

var writeJSON = handler.WriteJSON

// readBody reads a request body of at most limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, errs.Wrap(errs.PayloadTooLarge, store.ErrTooLarge, "request body over "+strconv.FormatInt(limit, 10)+" bytes")
	}
	if err != nil {
		return nil, errs.Wrap(errs.BadRequest, err, "reading the request body failed")
	}
	return b, nil
}

// duration parses a query parameter as a Go duration ("30s", "250ms") or
// a whole number of seconds; absent is 0.
func duration(r *http.Request, name string) (time.Duration, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 && n < 1<<32 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, errs.E(errs.BadRequest, "%s must be a duration such as 30s or 250ms", name)
	}
	return d, nil
}

func queryInt(r *http.Request, name string, def int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, errs.E(errs.BadRequest, "%s must be a decimal integer", name)
	}
	return n, nil
}

func writeOptions(r *http.Request) (store.WriteOptions, error) {
	ttl, err := duration(r, "ttl")
	if err == nil {
		err = store.CheckTTL(ttl)
	}
	if err != nil {
		return store.WriteOptions{}, err
	}
	d, err := store.ParseDurability(r.URL.Query().Get("durability"))
	return store.WriteOptions{TTL: ttl, Durability: d}, err
}

func page(r *http.Request) (prefix, cursor string, limit int, err error) {
	q := r.URL.Query()
	l, err := queryInt(r, "limit", 0)
	return q.Get("prefix"), q.Get("cursor"), int(min(max(l, 0), 1000)), err
}

func etag(version uint64) string { return `"` + strconv.FormatUint(version, 10) + `"` }

func (s *Service) httpKVGet(w http.ResponseWriter, r *http.Request) error {
	e, err := s.kv.Get(r.PathValue("bucket"), r.PathValue("key"))
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(e.Value)))
	h.Set("ETag", etag(e.Version))
	h.Set("X-Mote-Version", strconv.FormatUint(e.Version, 10))
	if !e.Expires.IsZero() {
		h.Set("X-Mote-Expires", e.Expires.UTC().Format(time.RFC3339Nano))
	}
	if r.Method == http.MethodHead {
		return nil
	}
	_, err = w.Write(e.Value)
	return err
}

// httpKVPut writes a key. If-Match: "<version>" makes it a compare-and-
// swap; If-None-Match: * makes it create-only.
func (s *Service) httpKVPut(w http.ResponseWriter, r *http.Request) error {
	o, err := writeOptions(r)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, int64(s.kv.MaxValueBytes()))
	if err != nil {
		return err
	}
	bucket, key := r.PathValue("bucket"), r.PathValue("key")
	var ver uint64
	switch match, none := r.Header.Get("If-Match"), r.Header.Get("If-None-Match"); {
	case match != "":
		want, perr := strconv.ParseUint(strings.Trim(match, `"`), 10, 64)
		if perr != nil {
			return errs.E(errs.BadRequest, "If-Match must be a version")
		}
		ver, err = s.kv.CAS(bucket, key, want, body, o)
	case none == "*":
		ver, err = s.kv.CAS(bucket, key, 0, body, o)
	case none != "":
		return errs.E(errs.BadRequest, "If-None-Match supports only *")
	default:
		ver, err = s.kv.Put(bucket, key, body, o)
	}
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(ver))
	w.Header().Set("X-Mote-Version", strconv.FormatUint(ver, 10))
	return writeJSON(w, http.StatusOK, map[string]uint64{"version": ver})
}

func (s *Service) httpKVDelete(w http.ResponseWriter, r *http.Request) error {
	o, err := writeOptions(r)
	if err != nil {
		return err
	}
	if err := s.kv.Delete(r.PathValue("bucket"), r.PathValue("key"), o); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// httpKVPost serves POST …?op=incr&delta=N.
func (s *Service) httpKVPost(w http.ResponseWriter, r *http.Request) error {
	if op := r.URL.Query().Get("op"); op != "incr" {
		return errs.E(errs.BadRequest, "POST on a key needs ?op=incr, not %q", op)
	}
	delta, err := queryInt(r, "delta", 1)
	if err != nil {
		return err
	}
	o, err := writeOptions(r)
	if err != nil {
		return err
	}
	n, ver, err := s.kv.Increment(r.PathValue("bucket"), r.PathValue("key"), delta, o)
	if err != nil {
		return err
	}
	w.Header().Set("X-Mote-Version", strconv.FormatUint(ver, 10))
	return writeJSON(w, http.StatusOK, map[string]any{"value": n, "version": ver})
}

func (s *Service) httpKVList(w http.ResponseWriter, r *http.Request) error {
	prefix, cursor, limit, err := page(r)
	if err != nil {
		return err
	}
	p, err := s.kv.List(r.PathValue("bucket"), prefix, cursor, limit)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

// batchRequest is the body of POST /v1/kv/{bucket}?op=batch. Values are
// base64 in JSON.
type batchRequest struct {
	Ops []struct {
		Op    string `json:"op"` // "put" or "delete"
		Key   string `json:"key"`
		Value []byte `json:"value"`
		TTL   string `json:"ttl,omitempty"` // Go duration
	} `json:"ops"`
}

func (s *Service) httpKVBatch(w http.ResponseWriter, r *http.Request) error {
	if op := r.URL.Query().Get("op"); op != "batch" {
		return errs.E(errs.BadRequest, "POST on a bucket needs ?op=batch, not %q", op)
	}
	o, err := writeOptions(r)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, 2*int64(s.kv.MaxValueBytes())+16<<20)
	if err != nil {
		return err
	}
	var req batchRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return errs.Wrap(errs.BadRequest, err, "batch body is not valid JSON")
	}
	bucket := r.PathValue("bucket")
	ops := make([]store.BatchOp, len(req.Ops))
	for i, op := range req.Ops {
		ops[i] = store.BatchOp{Bucket: bucket, Key: op.Key, Value: op.Value}
		switch op.Op {
		case "put":
		case "delete":
			ops[i].Delete = true
		default:
			return errs.E(errs.BadRequest, "batch op %d is %q, want put or delete", i, op.Op)
		}
		if op.TTL != "" {
			ttl, err := time.ParseDuration(op.TTL)
			if err != nil {
				return errs.E(errs.BadRequest, "batch op %d: bad ttl %q", i, op.TTL)
			}
			if err := store.CheckTTL(ttl); err != nil {
				return errs.E(errs.BadRequest, "batch op %d: %s", i, errs.MessageOf(err))
			}
			ops[i].TTL = ttl
		}
	}
	vers, err := s.kv.Batch(ops, o)
	if err != nil {
		return err
	}
	if vers == nil {
		vers = []uint64{}
	}
	return writeJSON(w, http.StatusOK, map[string][]uint64{"versions": vers})
}

func (s *Service) httpObjPut(w http.ResponseWriter, r *http.Request) error {
	info, err := s.obj.Put(r.PathValue("bucket"), r.PathValue("key"), r.Body, r.Header.Get("Content-Type"))
	if err != nil {
		return err
	}
	w.Header().Set("ETag", `"`+info.SHA256+`"`)
	return writeJSON(w, http.StatusCreated, info)
}

// httpObjGet streams an object; http.ServeContent answers HEAD, Range and
// conditional requests, reading only the bytes it sends.
func (s *Service) httpObjGet(w http.ResponseWriter, r *http.Request) error {
	obj, err := s.obj.Open(r.PathValue("bucket"), r.PathValue("key"))
	if err != nil {
		return err
	}
	defer obj.Close()
	h := w.Header()
	ct := obj.Info.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("ETag", `"`+obj.Info.SHA256+`"`)
	h.Set("X-Mote-Sha256", obj.Info.SHA256)
	http.ServeContent(w, r, "", obj.Info.Modified, obj.File)
	return nil
}

func (s *Service) httpObjDelete(w http.ResponseWriter, r *http.Request) error {
	if err := s.obj.Delete(r.PathValue("bucket"), r.PathValue("key")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) httpObjList(w http.ResponseWriter, r *http.Request) error {
	prefix, cursor, limit, err := page(r)
	if err != nil {
		return err
	}
	infos, next, err := s.obj.List(r.PathValue("bucket"), prefix, cursor, limit)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"objects": infos, "next_cursor": next})
}

func (s *Service) httpCounterGet(w http.ResponseWriter, r *http.Request) error {
	n, err := s.coord.Counter(r.PathValue("bucket"), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]int64{"value": n})
}

func (s *Service) httpCounterAdd(w http.ResponseWriter, r *http.Request) error {
	delta, err := queryInt(r, "delta", 1)
	if err != nil {
		return err
	}
	n, err := s.coord.Add(r.PathValue("bucket"), r.PathValue("name"), delta)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]int64{"value": n})
}

func (s *Service) httpQueueLen(w http.ResponseWriter, r *http.Request) error {
	n, err := s.coord.Len(r.PathValue("bucket"), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]int64{"length": n})
}

// httpQueuePost pushes the body as one item, or with ?op=pop pops one,
// waiting up to ?timeout= for it.
func (s *Service) httpQueuePost(w http.ResponseWriter, r *http.Request) error {
	bucket, name := r.PathValue("bucket"), r.PathValue("name")
	switch op := r.URL.Query().Get("op"); op {
	case "", "push":
		item, err := readBody(w, r, 1<<20)
		if err != nil {
			return err
		}
		n, err := s.coord.Push(bucket, name, item)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, map[string]int64{"length": n})
	case "pop":
		timeout, err := duration(r, "timeout")
		if err != nil {
			return err
		}
		item, err := s.coord.Pop(r.Context(), bucket, name, timeout)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, err = w.Write(item)
		return err
	default:
		return errs.E(errs.BadRequest, "queue op must be push or pop, not %q", op)
	}
}

func (s *Service) httpSignalPublish(w http.ResponseWriter, r *http.Request) error {
	payload, err := readBody(w, r, 1<<20)
	if err != nil {
		return err
	}
	n, err := s.coord.Publish(r.PathValue("bucket"), r.PathValue("name"), payload)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]int{"woken": n})
}

func (s *Service) httpEndScope(w http.ResponseWriter, r *http.Request) error {
	if err := s.EndScope(r.PathValue("root")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
