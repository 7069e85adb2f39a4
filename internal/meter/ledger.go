package meter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/store"
)

// LedgerConfig configures a Ledger. The zero value is usable after
// Validate fills in the defaults.
type LedgerConfig struct {
	// FlushInterval is how often recorded usage is written to the database.
	// Usage recorded since the last flush is lost if the process dies, so
	// this bounds what a crash can drop. Default 1 s.
	FlushInterval time.Duration
	// DefaultMemory is the memory size (bytes) used for the wall-clock GB-s
	// comparison when a record has none. Default 128 MiB, Lambda's smallest.
	DefaultMemory int64
	// Logger receives flush failures. Default: discard.
	Logger *slog.Logger
}

// Validate fills in defaults and rejects impossible settings.
func (c *LedgerConfig) Validate() error {
	if c.FlushInterval < 0 || c.DefaultMemory < 0 {
		return errs.E(errs.BadRequest, "meter: negative ledger setting")
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = time.Second
	}
	if c.DefaultMemory == 0 {
		c.DefaultMemory = 128 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Record is what one execution of a function consumed. The flow engine
// records one per attempt, so retried work is counted (and billed) each time
// it ran.
type Record struct {
	Function string
	At       time.Time     // when the execution ended
	CPU      time.Duration // the function's own CPU time
	Wall     time.Duration // from start to end, waits included
	Memory   int64         // the function's memory size in bytes; 0: the default
	Failed   bool
}

// Usage is the total for one function in one hour.
//
// BilledMs is Mote's bill: each execution's CPU time rounded up to a whole
// millisecond (meter.BilledMs). LambdaGBs is what wall-clock billing (AWS
// Lambda's model: duration rounded up to 1 ms, times the memory size in GB)
// would charge for the same executions; BilledGBs is Mote's billed CPU time expressed in the
// same unit, so the two can be compared directly.
type Usage struct {
	Function    string    `json:"function"`
	Hour        time.Time `json:"hour"`
	Invocations int64     `json:"invocations"`
	Errors      int64     `json:"errors"`
	CPUMicros   int64     `json:"cpu_us"`
	BilledMs    int64     `json:"billed_ms"`
	WallMs      int64     `json:"wall_ms"`
	LambdaGBs   float64   `json:"lambda_gb_s"`
	BilledGBs   float64   `json:"billed_gb_s"`

	// LambdaMBMs and BilledMBMs are exact integer sums (ms × MiB); the GB-s
	// figures are derived from them. They travel in JSON so that a client
	// can sum rows (Sum) and get the GB-s right.
	LambdaMBMs int64 `json:"lambda_mb_ms"`
	BilledMBMs int64 `json:"billed_mb_ms"`
}

// Ledger accumulates usage in memory and writes it to the database under
// store.PrefixUsage at least every FlushInterval, as a source of the
// store's committer (one commit carries the ledger's rows with whatever
// else is pending), so recording an execution costs a map update, not a
// database write. Safe for concurrent use.
type Ledger struct {
	db   *store.DB
	cfg  LedgerConfig
	feed *store.Feed

	mu      sync.Mutex // guards pending, last and lastKey
	pending map[hourKey]*Usage
	last    *Usage // pending[lastKey], the row Record used last
	lastKey hourKey

	// inflight is what the last Collect wrote (deltas), kept until its
	// commit succeeds; only the committer's goroutine uses it.
	inflight map[hourKey]*Usage
	held     bool       // the last Collect wrote nothing: keep inflight
	rows     []usageRow // Collect's scratch

	closeOne sync.Once
}

type hourKey struct {
	fn   string
	hour int64 // unix seconds of the hour's start
}

// NewLedger returns a Ledger over db and starts its flusher; Close stops it.
func NewLedger(db *store.DB, cfg LedgerConfig) (*Ledger, error) {
	if db == nil {
		return nil, errs.E(errs.BadRequest, "meter: ledger needs a database")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Ledger{
		db:      db,
		cfg:     cfg,
		pending: make(map[hourKey]*Usage),
	}
	l.feed = db.Register((*ledgerSource)(l), store.SourceConfig{Name: "ledger", Every: cfg.FlushInterval})
	return l, nil
}

// wallMs rounds wall time up to whole milliseconds, as Lambda does.
func wallMs(wall time.Duration) int64 {
	if wall <= 0 {
		return 0
	}
	return int64((wall + time.Millisecond - 1) / time.Millisecond)
}

// usageHour is the start of t's hour in Unix seconds: what
// t.Truncate(time.Hour).Unix() gives for any time after 1970, at a
// fraction of its cost.
func usageHour(t time.Time) int64 {
	sec := t.Unix()
	return sec - sec%3600
}

// Record adds one execution's usage.
func (l *Ledger) Record(r Record) {
	mem := r.Memory
	if mem <= 0 {
		mem = l.cfg.DefaultMemory
	}
	mib := (mem + (1<<20 - 1)) >> 20
	k := hourKey{fn: r.Function, hour: usageHour(r.At)}
	bms, wms := BilledMs(r.CPU), wallMs(r.Wall)

	l.mu.Lock()
	// Runs of records for one function and hour skip the map.
	u := l.last
	if u == nil || l.lastKey != k {
		u = l.pending[k]
		if u == nil {
			u = &Usage{Function: r.Function}
			l.pending[k] = u
		}
		l.last, l.lastKey = u, k
	}
	u.Invocations++
	if r.Failed {
		u.Errors++
	}
	u.CPUMicros += r.CPU.Microseconds()
	u.BilledMs += bms
	u.WallMs += wms
	u.LambdaMBMs += wms * mib
	u.BilledMBMs += bms * mib
	l.mu.Unlock()
}

// Flush writes the usage recorded so far to the database.
func (l *Ledger) Flush() error {
	if err := l.feed.Flush(); err != nil {
		return errs.Wrap(errs.Internal, err, "meter: write usage")
	}
	return nil
}

// ledgerSource is the Ledger as the committer's Source.
type ledgerSource Ledger

// Collect adds what was recorded since the last cycle to what a failed
// cycle gave back, and appends each row's new total (read, added to,
// written) to the cycle's batch.
func (src *ledgerSource) Collect(b *store.Batch) bool {
	l := (*Ledger)(src)
	l.mu.Lock()
	var pending map[hourKey]*Usage
	if len(l.pending) > 0 {
		pending = l.pending
		l.pending = make(map[hourKey]*Usage, len(pending))
	}
	l.last = nil
	l.lastKey = hourKey{}
	l.mu.Unlock()
	if l.inflight == nil {
		l.inflight = pending
	} else {
		merge(l.inflight, pending)
	}
	l.held = false
	rows := l.rows[:0]
	for k, d := range l.inflight {
		key := usageKey(k.fn, k.hour)
		var total Usage
		old, err := l.db.Get(key)
		switch {
		case err == nil:
			err = decodeUsage(old, &total)
		case errors.Is(err, store.ErrNotFound):
			err = nil
		}
		if err != nil {
			// Keep every row for a later cycle: the ledger's part of a
			// cycle is all of its rows or none.
			l.cfg.Logger.Error("meter: read usage", "err", err)
			l.held = true
			return false
		}
		total.add(d)
		rows = append(rows, usageRow{key, encodeUsage(&total)})
	}
	for _, r := range rows {
		b.Set(r.key, r.value)
	}
	clear(rows)
	l.rows = rows[:0]
	return false
}

// Committed forgets the rows written, or keeps them for the next cycle
// so a failed commit loses nothing.
func (src *ledgerSource) Committed(err error) {
	l := (*Ledger)(src)
	if err != nil {
		l.cfg.Logger.Error("meter: write usage", "err", err)
		return
	}
	if !l.held {
		l.inflight = nil
	}
}

type usageRow struct{ key, value []byte }

// merge adds the deltas of from into to.
func merge(to, from map[hourKey]*Usage) {
	for k, d := range from {
		if u := to[k]; u != nil {
			u.add(d)
		} else {
			to[k] = d
		}
	}
}

func (u *Usage) add(d *Usage) {
	u.Invocations += d.Invocations
	u.Errors += d.Errors
	u.CPUMicros += d.CPUMicros
	u.BilledMs += d.BilledMs
	u.WallMs += d.WallMs
	u.LambdaMBMs += d.LambdaMBMs
	u.BilledMBMs += d.BilledMBMs
}

func (u *Usage) derive() {
	u.LambdaGBs = float64(u.LambdaMBMs) / 1024 / 1000
	u.BilledGBs = float64(u.BilledMBMs) / 1024 / 1000
}

// Query returns usage per function per hour for the hours that start in
// [from, to), flushing first so that it includes everything recorded. An
// empty fn means every function. Rows are ordered by function, then hour.
func (l *Ledger) Query(fn string, from, to time.Time) ([]Usage, error) {
	if err := l.Flush(); err != nil {
		return nil, err
	}
	if !to.After(from) {
		return nil, errs.E(errs.BadRequest, "meter: usage range is empty (to must be after from)")
	}
	prefix := []byte(store.PrefixUsage)
	if fn != "" {
		prefix = append(append(prefix, fn...), 0)
	}
	lo, hi := from.Unix(), to.Unix()
	var out []Usage
	var derr error
	err := l.db.Scan(prefix, func(key, value []byte) bool {
		name, hour, ok := parseUsageKey(key)
		if !ok || hour+3600 <= lo || hour >= hi {
			return true
		}
		u := Usage{Function: name, Hour: time.Unix(hour, 0).UTC()}
		if derr = decodeUsage(value, &u); derr != nil {
			return false
		}
		u.derive()
		out = append(out, u)
		return true
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "meter: read usage")
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Function != out[j].Function {
			return out[i].Function < out[j].Function
		}
		return out[i].Hour.Before(out[j].Hour)
	})
	return out, nil
}

// Sum totals rows (for example a Query's result) into one Usage with no
// function or hour.
func Sum(rows []Usage) Usage {
	var t Usage
	for i := range rows {
		t.add(&rows[i])
	}
	t.derive()
	return t
}

// Close writes what is pending and leaves the committer.
func (l *Ledger) Close() error {
	var err error
	l.closeOne.Do(func() {
		if err = l.feed.Close(); err != nil {
			err = errs.Wrap(errs.Internal, err, "meter: write usage")
		}
	})
	return err
}

// usageKey is PrefixUsage || fn || 0x00 || hour (8 bytes, big-endian, offset
// so that key order is time order for any hour).
func usageKey(fn string, hour int64) []byte {
	k := make([]byte, 0, len(store.PrefixUsage)+len(fn)+9)
	k = append(k, store.PrefixUsage...)
	k = append(k, fn...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, uint64(hour)^(1<<63))
}

func parseUsageKey(key []byte) (fn string, hour int64, ok bool) {
	rest := key[len(store.PrefixUsage):]
	i := bytes.IndexByte(rest, 0)
	if i < 0 || len(rest)-i-1 != 8 {
		return "", 0, false
	}
	return string(rest[:i]), int64(binary.BigEndian.Uint64(rest[i+1:]) ^ (1 << 63)), true
}

// The value is a version byte and seven uvarints, in the order of encodeUsage.
const usageVersion = 1

func encodeUsage(u *Usage) []byte {
	b := make([]byte, 1, 1+7*binary.MaxVarintLen64)
	b[0] = usageVersion
	for _, v := range [...]int64{u.Invocations, u.Errors, u.CPUMicros, u.BilledMs, u.WallMs, u.LambdaMBMs, u.BilledMBMs} {
		b = binary.AppendUvarint(b, uint64(v))
	}
	return b
}

func decodeUsage(b []byte, u *Usage) error {
	if len(b) == 0 || b[0] != usageVersion {
		return errs.E(errs.Internal, "meter: unknown usage record version")
	}
	b = b[1:]
	for _, p := range [...]*int64{&u.Invocations, &u.Errors, &u.CPUMicros, &u.BilledMs, &u.WallMs, &u.LambdaMBMs, &u.BilledMBMs} {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return errs.E(errs.Internal, "meter: corrupt usage record")
		}
		*p = int64(v)
		b = b[n:]
	}
	return nil
}
