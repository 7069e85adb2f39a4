package trigger

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Spec is a parsed schedule expression: it says when the next tick after a
// given instant is due.
type Spec interface {
	// Next returns the first tick strictly after t, or the zero time if
	// there is none (a cron expression that can never match again).
	Next(t time.Time) time.Time
}

// ExprError is a schedule expression that does not parse: Field names the
// part at fault ("minute", "rate", …) and Msg says what is wrong with it.
type ExprError struct {
	Expr  string
	Field string
	Msg   string
}

func (e *ExprError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("schedule expression %q: %s", e.Expr, e.Msg)
	}
	return fmt.Sprintf("schedule expression %q: %s field: %s", e.Expr, e.Field, e.Msg)
}

// Is makes every ExprError match ErrBadExpr.
func (e *ExprError) Is(target error) bool { return target == ErrBadExpr }

// maxYear bounds the search for the next tick: EventBridge's year field
// stops at 2199, and an expression with no tick before then never fires.
const maxYear = 2199

// Parse parses a schedule expression: a 5-field cron expression ("*/5 * *
// * *", the fields and names of Vixie cron, or a @daily-style shorthand),
// EventBridge's "cron(min hour day-of-month month day-of-week year)" or
// "rate(5 minutes)". Cron ticks are wall-clock times in loc (nil: UTC);
// rate ticks are anchor plus whole multiples of the period.
func Parse(expr string, loc *time.Location, anchor time.Time) (Spec, error) {
	if loc == nil {
		loc = time.UTC
	}
	s := strings.TrimSpace(expr)
	switch {
	case strings.HasPrefix(s, "rate(") && strings.HasSuffix(s, ")"):
		return parseRate(expr, s[len("rate("):len(s)-1], anchor)
	case strings.HasPrefix(s, "cron(") && strings.HasSuffix(s, ")"):
		return parseCron(expr, strings.Fields(s[len("cron("):len(s)-1]), true, loc)
	case strings.HasPrefix(s, "@"):
		full, ok := shorthands[s]
		if !ok {
			return nil, &ExprError{Expr: expr, Msg: "unknown shorthand; use @yearly, @monthly, @weekly, @daily or @hourly"}
		}
		return parseCron(expr, strings.Fields(full), false, loc)
	}
	return parseCron(expr, strings.Fields(s), false, loc)
}

var shorthands = map[string]string{
	"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
	"@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}

// Rate ticks every Period from Anchor.
type Rate struct {
	Anchor time.Time
	Period time.Duration
}

// Next returns the first Anchor + k·Period after t.
func (r Rate) Next(t time.Time) time.Time {
	if t.Before(r.Anchor) {
		return r.Anchor
	}
	k := t.Sub(r.Anchor)/r.Period + 1
	return r.Anchor.Add(k * r.Period)
}

func parseRate(expr, body string, anchor time.Time) (Spec, error) {
	f := strings.Fields(body)
	if len(f) != 2 {
		return nil, &ExprError{Expr: expr, Field: "rate", Msg: "want rate(VALUE UNIT), as rate(5 minutes)"}
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 0 {
		return nil, &ExprError{Expr: expr, Field: "rate", Msg: fmt.Sprintf("value %q is not a positive whole number", f[0])}
	}
	var unit time.Duration
	switch strings.TrimSuffix(f[1], "s") {
	case "second":
		unit = time.Second
	case "minute":
		unit = time.Minute
	case "hour":
		unit = time.Hour
	case "day":
		unit = 24 * time.Hour
	default:
		return nil, &ExprError{Expr: expr, Field: "rate", Msg: fmt.Sprintf("unit %q is not seconds, minutes, hours or days", f[1])}
	}
	if int64(n) > int64(100*365*24*time.Hour/unit) {
		return nil, &ExprError{Expr: expr, Field: "rate", Msg: "period is more than 100 years"}
	}
	return Rate{Anchor: anchor.Truncate(time.Second), Period: time.Duration(n) * unit}, nil
}

// Cron is a parsed cron expression. Each field is a bit set; the day is
// matched as Vixie cron does: when both day-of-month and day-of-week are
// restricted (neither starts with '*' or '?'), a day matching either one
// matches.
type Cron struct {
	minute, hour, dom, month, dow uint64
	years                         [(maxYear - 1970 + 64) / 64]uint64
	anyYear                       bool
	domStar, dowStar              bool
	lastDOM                       bool     // L in day-of-month
	lastDOW                       uint8    // xL: bit x, the last weekday x of the month
	nthDOW                        [7]uint8 // x#n: bit n of nthDOW[x]
	loc                           *time.Location
}

type field struct {
	name     string
	min, max int
	names    []string // names[i] is the value min+i
}

var (
	fMinute = field{name: "minute", min: 0, max: 59}
	fHour   = field{name: "hour", min: 0, max: 23}
	fDOM    = field{name: "day-of-month", min: 1, max: 31}
	fMonth  = field{name: "month", min: 1, max: 12,
		names: []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}}
	// Vixie: 0-7, both 0 and 7 Sunday. EventBridge: 1-7, 1 Sunday.
	fDOW   = field{name: "day-of-week", min: 0, max: 7, names: []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"}}
	fDOWEB = field{name: "day-of-week", min: 1, max: 7, names: []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}}
	fYear  = field{name: "year", min: 1970, max: maxYear}
)

func parseCron(expr string, f []string, eventBridge bool, loc *time.Location) (Spec, error) {
	want := 5
	if eventBridge {
		want = 6
	}
	if len(f) != want {
		msg := fmt.Sprintf("has %d fields; a cron expression has 5 (minute hour day-of-month month day-of-week)", len(f))
		if eventBridge {
			msg = fmt.Sprintf("has %d fields; cron(...) has 6 (minute hour day-of-month month day-of-week year)", len(f))
		} else if len(f) == 6 {
			msg += "; for EventBridge's 6-field form write cron(...)"
		}
		return nil, &ExprError{Expr: expr, Msg: msg}
	}
	c := &Cron{loc: loc}
	bad := func(fd field, msg string, args ...any) error {
		return &ExprError{Expr: expr, Field: fd.name, Msg: fmt.Sprintf(msg, args...)}
	}
	var err error
	if c.minute, _, err = parseField(f[0], fMinute, bad); err != nil {
		return nil, err
	}
	if c.hour, _, err = parseField(f[1], fHour, bad); err != nil {
		return nil, err
	}
	if c.month, _, err = parseField(f[3], fMonth, bad); err != nil {
		return nil, err
	}
	domF, dowF := f[2], f[4]
	if eventBridge {
		if (domF == "?") == (dowF == "?") {
			return nil, &ExprError{Expr: expr, Msg: "cron(...) needs '?' in exactly one of day-of-month and day-of-week"}
		}
	} else if domF == "?" || dowF == "?" {
		return nil, &ExprError{Expr: expr, Msg: "'?' is only for cron(...); use '*'"}
	}
	// Day of month: L (the last day) besides the usual forms.
	c.domStar = domF[0] == '*' || domF[0] == '?'
	switch {
	case domF == "?":
		c.dom = fullBits(fDOM)
	case domF == "L" && eventBridge:
		c.lastDOM = true
	case strings.ContainsAny(domF, "WL"):
		if !eventBridge {
			return nil, bad(fDOM, "%q: 'L' and 'W' are only for cron(...)", domF)
		}
		return nil, bad(fDOM, "%q: only a plain L (the last day) is supported, not W or L-offsets", domF)
	default:
		if c.dom, _, err = parseField(domF, fDOM, bad); err != nil {
			return nil, err
		}
	}
	c.dowStar = dowF[0] == '*' || dowF[0] == '?'
	dowField := fDOW
	if eventBridge {
		dowField = fDOWEB
	}
	if dowF == "?" {
		c.dow = 0x7f
	} else if err := c.parseDOW(dowF, dowField, eventBridge, bad); err != nil {
		return nil, err
	}
	c.anyYear = true
	if eventBridge && f[5] != "*" {
		c.anyYear = false
		if err := parseYears(f[5], &c.years, bad); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// parseDOW parses the day-of-week field into c.dow (bit 0 Sunday), with
// EventBridge's xL and x#n items allowed in cron(...).
func (c *Cron) parseDOW(s string, fd field, eventBridge bool, bad func(field, string, ...any) error) error {
	for _, item := range strings.Split(s, ",") {
		if i := strings.IndexByte(item, '#'); i >= 0 || (len(item) > 1 && strings.HasSuffix(item, "L")) {
			if !eventBridge {
				return bad(fd, "%q: '#' and 'L' are only for cron(...)", item)
			}
			day := item
			if i >= 0 {
				day = item[:i]
			} else {
				day = item[:len(item)-1]
			}
			d, err := value(day, fd)
			if err != nil {
				return bad(fd, "%q: %v", item, err)
			}
			wd := (d - fd.min) % 7 // EventBridge: 1 is Sunday
			if i < 0 {
				c.lastDOW |= 1 << wd
				continue
			}
			n, err := strconv.Atoi(item[i+1:])
			if err != nil || n < 1 || n > 5 {
				return bad(fd, "%q: the n of x#n must be 1-5", item)
			}
			c.nthDOW[wd] |= 1 << n
			continue
		}
		bits, _, err := parseField(item, fd, bad)
		if err != nil {
			return err
		}
		if eventBridge {
			c.dow |= bits >> 1 // 1..7 → bits 0..6
		} else {
			c.dow |= (bits | bits>>7) & 0x7f // 7 is Sunday too
		}
	}
	return nil
}

func fullBits(fd field) uint64 {
	var b uint64
	for v := fd.min; v <= fd.max; v++ {
		b |= 1 << v
	}
	return b
}

// parseField parses a comma-separated list of *, N, N-M, with an optional
// /STEP, into a bit set (bit v set for each value v).
func parseField(s string, fd field, bad func(field, string, ...any) error) (uint64, bool, error) {
	var bits uint64
	star := false
	for _, item := range strings.Split(s, ",") {
		lo, hi, step, isStar, err := parseItem(item, fd)
		if err != nil {
			return 0, false, bad(fd, "%q: %v", item, err)
		}
		star = star || isStar
		for v := lo; v <= hi; v += step {
			bits |= 1 << v
		}
	}
	return bits, star, nil
}

func parseItem(item string, fd field) (lo, hi, step int, star bool, err error) {
	if item == "" {
		return 0, 0, 0, false, fmt.Errorf("empty item")
	}
	rng, stepS, hasStep := strings.Cut(item, "/")
	step = 1
	if hasStep {
		step, err = strconv.Atoi(stepS)
		if err != nil || step <= 0 {
			return 0, 0, 0, false, fmt.Errorf("step %q is not a positive whole number", stepS)
		}
		if step > fd.max-fd.min+1 {
			return 0, 0, 0, false, fmt.Errorf("step %d is larger than the field's range %d-%d", step, fd.min, fd.max)
		}
	}
	switch {
	case rng == "*":
		return fd.min, fd.max, step, true, nil
	case strings.Contains(rng, "-"):
		a, b, _ := strings.Cut(rng, "-")
		if lo, err = value(a, fd); err != nil {
			return 0, 0, 0, false, err
		}
		if hi, err = value(b, fd); err != nil {
			return 0, 0, 0, false, err
		}
		if lo > hi {
			return 0, 0, 0, false, fmt.Errorf("range %d-%d runs backwards", lo, hi)
		}
		return lo, hi, step, false, nil
	}
	if lo, err = value(rng, fd); err != nil {
		return 0, 0, 0, false, err
	}
	if hasStep { // N/STEP: from N to the end, as Vixie cron
		return lo, fd.max, step, false, nil
	}
	return lo, lo, 1, false, nil
}

func value(s string, fd field) (int, error) {
	for i, n := range fd.names {
		if strings.EqualFold(s, n) {
			return fd.min + i, nil
		}
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		if len(fd.names) > 0 {
			return 0, fmt.Errorf("%q is not a number or a name (%s…)", s, strings.Join(fd.names[:3], ", "))
		}
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if v < fd.min || v > fd.max {
		return 0, fmt.Errorf("%d is outside %d-%d", v, fd.min, fd.max)
	}
	return v, nil
}

func parseYears(s string, years *[(maxYear - 1970 + 64) / 64]uint64, bad func(field, string, ...any) error) error {
	for _, item := range strings.Split(s, ",") {
		lo, hi, step, _, err := parseItem(item, fYear)
		if err != nil {
			return bad(fYear, "%q: %v", item, err)
		}
		for v := lo; v <= hi; v += step {
			years[(v-1970)/64] |= 1 << ((v - 1970) % 64)
		}
	}
	return nil
}

func (c *Cron) yearOK(y int) bool {
	if c.anyYear {
		return true
	}
	if y < 1970 || y > maxYear {
		return false
	}
	return c.years[(y-1970)/64]&(1<<((y-1970)%64)) != 0
}

func daysIn(y, m int) int {
	return time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func (c *Cron) dayOK(y, m, d int) bool {
	last := daysIn(y, m)
	wd := int(time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC).Weekday())
	domOK := c.dom&(1<<d) != 0 || (c.lastDOM && d == last)
	dowOK := c.dow&(1<<wd) != 0 || (c.lastDOW&(1<<wd) != 0 && d+7 > last) ||
		c.nthDOW[wd]&(1<<((d-1)/7+1)) != 0
	if c.domStar || c.dowStar {
		return domOK && dowOK
	}
	return domOK || dowOK
}

// Next returns the first minute after t whose wall-clock time in the
// expression's zone matches. A wall-clock time that a daylight-saving
// change skips does not exist and is not fired; one that it repeats fires
// once.
func (c *Cron) Next(t time.Time) time.Time {
	w := t.In(c.loc).Truncate(time.Minute).Add(time.Minute)
	y, mo, d, h, mi := w.Year(), int(w.Month()), w.Day(), w.Hour(), w.Minute()
	// The wall clock is walked field by field, largest first, with no
	// regard to the zone; only a full match is turned into an instant.
	nextDay := func() {
		d, h, mi = d+1, 0, 0
		if d > daysIn(y, mo) {
			d, mo = 1, mo+1
			if mo > 12 {
				mo, y = 1, y+1
			}
		}
	}
	for y <= maxYear {
		switch {
		case !c.yearOK(y):
			y, mo, d, h, mi = y+1, 1, 1, 0, 0
		case c.month&(1<<mo) == 0:
			mo, d, h, mi = mo+1, 1, 0, 0
			if mo > 12 {
				mo, y = 1, y+1
			}
		case !c.dayOK(y, mo, d):
			nextDay()
		case c.hour&(1<<h) == 0:
			h, mi = h+1, 0
			if h > 23 {
				nextDay()
			}
		case c.minute&(1<<mi) == 0:
			mi++
			if mi > 59 {
				h, mi = h+1, 0
				if h > 23 {
					nextDay()
				}
			}
		default:
			at := time.Date(y, time.Month(mo), d, h, mi, 0, 0, c.loc)
			if at.After(t) && at.Hour() == h && at.Minute() == mi && at.Day() == d {
				return at
			}
			mi++
			if mi > 59 {
				h, mi = h+1, 0
				if h > 23 {
					nextDay()
				}
			}
		}
	}
	return time.Time{}
}
