package trigger

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Skipf("time zone %s not available: %v", name, err)
	}
	return loc
}

func TestCronNext(t *testing.T) {
	utc := time.UTC
	paris := mustLoc(t, "Europe/Paris")
	ny := mustLoc(t, "America/New_York")
	at := func(loc *time.Location, s string) time.Time {
		t.Helper()
		v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		expr  string
		loc   *time.Location
		after string
		want  string // in loc
	}{
		{"*/5 * * * *", utc, "2026-12-07 20:31", "2026-12-07 20:35"},
		{"*/5 * * * *", utc, "2026-12-07 20:35", "2026-12-07 20:40"},
		{"0 9 * * MON-FRI", utc, "2026-12-05 10:00", "2026-12-07 09:00"}, // Saturday → Monday
		{"30 2 * * *", utc, "2026-12-07 02:30", "2026-12-08 02:30"},
		{"0 0 1 1 *", utc, "2026-06-01 00:00", "2027-01-01 00:00"},
		{"@hourly", utc, "2026-12-07 20:00", "2026-12-07 21:00"},
		{"@weekly", utc, "2026-12-07 00:00", "2026-12-13 00:00"}, // Sunday
		{"0 0 29 2 *", utc, "2026-03-01 00:00", "2028-02-29 00:00"},
		// Vixie: both day fields restricted → either matches.
		{"0 0 13 * 5", utc, "2026-12-01 00:00", "2026-12-04 00:00"}, // Friday the 4th before the 13th
		{"0 0 1,15 * *", utc, "2026-12-02 00:00", "2026-12-15 00:00"},
		{"15-45/15 3 * * 7", utc, "2026-12-07 00:00", "2026-12-13 03:15"}, // 7 is Sunday
		{"0 12 * JAN,jul *", utc, "2026-02-01 00:00", "2026-07-01 12:00"},
		// Time zones: 09:00 in Paris is 08:00 UTC in winter.
		{"0 9 * * *", paris, "2026-12-07 09:00", "2026-12-08 09:00"},
		// Spring forward in Paris (2026-03-29, 02:00 → 03:00): 02:30 does not exist.
		{"30 2 * * *", paris, "2026-03-28 03:00", "2026-03-30 02:30"},
		// Fall back in New York (2026-11-01, 02:00 → 01:00): 01:30 fires once.
		{"30 1 * * *", ny, "2026-10-31 12:00", "2026-11-01 01:30"},
		// EventBridge: day-of-week 1 is Sunday, '?' in one day field.
		{"cron(0 10 ? * 2 *)", utc, "2026-12-07 10:00", "2026-12-14 10:00"}, // Mondays
		{"cron(0 18 ? * MON-FRI *)", utc, "2026-12-05 00:00", "2026-12-07 18:00"},
		{"cron(15 12 * * ? *)", utc, "2026-12-07 13:00", "2026-12-08 12:15"},
		{"cron(0 0 L * ? *)", utc, "2027-02-01 00:00", "2027-02-28 00:00"},
		{"cron(0 0 ? * 6L *)", utc, "2026-12-01 00:00", "2026-12-25 00:00"},  // last Friday
		{"cron(0 0 ? * 3#2 *)", utc, "2026-12-01 00:00", "2026-12-08 00:00"}, // second Tuesday
		{"cron(0 0 1 1 ? 2030-2031)", utc, "2026-12-01 00:00", "2030-01-01 00:00"},
	} {
		spec, err := Parse(tc.expr, tc.loc, time.Time{})
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.expr, err)
			continue
		}
		got := spec.Next(at(tc.loc, tc.after))
		if want := at(tc.loc, tc.want); !got.Equal(want) {
			t.Errorf("%q in %s after %s: got %s, want %s", tc.expr, tc.loc, tc.after, got.In(tc.loc), want)
		}
	}
}

func TestCronFallBackFiresOnce(t *testing.T) {
	ny := mustLoc(t, "America/New_York")
	spec, err := Parse("30 1 * * *", ny, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	first := spec.Next(time.Date(2026, 11, 1, 0, 0, 0, 0, ny))
	second := spec.Next(first)
	if second.Sub(first) < 24*time.Hour {
		t.Errorf("01:30 on the fall-back day fired twice: %s then %s", first, second)
	}
}

func TestCronNever(t *testing.T) {
	spec, err := Parse("0 0 30 2 *", nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.Next(time.Now()); !got.IsZero() {
		t.Errorf("February 30th: got %s, want no tick", got)
	}
	spec, _ = Parse("cron(0 0 1 1 ? 1999)", nil, time.Time{})
	if got := spec.Next(time.Now()); !got.IsZero() {
		t.Errorf("1999: got %s, want no tick", got)
	}
}

func TestRate(t *testing.T) {
	anchor := time.Date(2026, 12, 7, 20, 0, 30, 0, time.UTC)
	for _, tc := range []struct {
		expr  string
		after time.Time
		want  time.Time
	}{
		{"rate(5 minutes)", anchor, anchor.Add(5 * time.Minute)},
		{"rate(5 minutes)", anchor.Add(7 * time.Minute), anchor.Add(10 * time.Minute)},
		{"rate(1 minute)", anchor.Add(-time.Hour), anchor},
		{"rate(1 hour)", anchor.Add(time.Hour), anchor.Add(2 * time.Hour)},
		{"rate(2 days)", anchor, anchor.Add(48 * time.Hour)},
		{"rate(1 second)", anchor.Add(1500 * time.Millisecond), anchor.Add(2 * time.Second)},
	} {
		spec, err := Parse(tc.expr, nil, anchor)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.expr, err)
		}
		if got := spec.Next(tc.after); !got.Equal(tc.want) {
			t.Errorf("%q after %s: got %s, want %s", tc.expr, tc.after, got, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ expr, want string }{
		{"", "has 0 fields"},
		{"* * * *", "has 4 fields"},
		{"0 0 * * * 2026", "write cron(...)"},
		{"61 * * * *", "minute field: \"61\": 61 is outside 0-59"},
		{"* 24 * * *", "hour field"},
		{"* * 0 * *", "day-of-month field"},
		{"* * * 13 *", "month field"},
		{"* * * FOO *", "not a number or a name"},
		{"* * * * 8", "day-of-week field"},
		{"*/0 * * * *", "step \"0\""},
		{"5-1 * * * *", "runs backwards"},
		{"1,,2 * * * *", "empty item"},
		{"* * ? * *", "only for cron(...)"},
		{"* * L * *", "only for cron(...)"},
		{"cron(0 0 * * * *)", "exactly one of"},
		{"cron(0 0 ? * ? *)", "exactly one of"},
		{"cron(0 0 15W * ? *)", "not W"},
		{"cron(0 0 ? * 2#6 *)", "must be 1-5"},
		{"cron(0 0 1 1 ? 1800)", "year field"},
		{"@fortnightly", "unknown shorthand"},
		{"rate(5)", "want rate(VALUE UNIT)"},
		{"rate(0 minutes)", "not a positive"},
		{"rate(5 weeks)", "unit \"weeks\""},
		{"rate(999999999 days)", "more than 100 years"},
	} {
		_, err := Parse(tc.expr, nil, time.Time{})
		if err == nil {
			t.Errorf("Parse(%q): no error, want one containing %q", tc.expr, tc.want)
			continue
		}
		if !errors.Is(err, ErrBadExpr) {
			t.Errorf("Parse(%q): %v is not ErrBadExpr", tc.expr, err)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q): got %q, want it to contain %q", tc.expr, err, tc.want)
		}
	}
}

// matches is a reference matcher: does the wall-clock minute w (in c's
// zone) match c? Next must return exactly the first instant after t for
// which it is true.
func (c *Cron) matches(w time.Time) bool {
	return c.yearOK(w.Year()) && c.month&(1<<int(w.Month())) != 0 && c.dayOK(w.Year(), int(w.Month()), w.Day()) &&
		c.hour&(1<<w.Hour()) != 0 && c.minute&(1<<w.Minute()) != 0
}

// checkNext checks spec.Next(after) against a minute-by-minute scan of the
// following days.
func checkNext(t *testing.T, expr string, spec Spec, after time.Time) {
	t.Helper()
	got := spec.Next(after)
	c, ok := spec.(*Cron)
	if !ok {
		if !got.After(after) {
			t.Fatalf("%q: Next(%s) = %s, not after", expr, after, got)
		}
		return
	}
	if !got.IsZero() {
		if !got.After(after) {
			t.Fatalf("%q: Next(%s) = %s, not after", expr, after, got)
		}
		if got.Second() != 0 || got.Nanosecond() != 0 || !c.matches(got.In(c.loc)) {
			t.Fatalf("%q: Next(%s) = %s, which does not match", expr, after, got)
		}
	}
	// In UTC every minute exists once: no match may come before got.
	if c.loc != time.UTC {
		return
	}
	end := after.Add(3 * 24 * time.Hour)
	if !got.IsZero() && got.Before(end) {
		end = got
	}
	for m := after.Truncate(time.Minute).Add(time.Minute); m.Before(end); m = m.Add(time.Minute) {
		if c.matches(m) {
			t.Fatalf("%q: Next(%s) = %s, but %s matches first", expr, after, got, m)
		}
	}
}

func TestCronNextScan(t *testing.T) {
	exprs := []string{"*/7 */5 * * *", "0 0 13 * 5", "59 23 31 * *", "0 12 * * 1-5", "cron(0/20 8-17 ? * 2-6 *)", "cron(5 4 L * ? *)"}
	start := time.Date(2026, 1, 30, 22, 13, 0, 0, time.UTC)
	for _, e := range exprs {
		spec, err := Parse(e, nil, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 200 {
			checkNext(t, e, spec, start.Add(time.Duration(i)*97*time.Minute+time.Duration(i)*time.Second))
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"*/5 * * * *", "0 9 * * MON-FRI", "cron(0 0 ? * 6L *)", "cron(0 0 L * ? 2030-2040/2)",
		"rate(5 minutes)", "@daily", "0 0 13 * 5", "1-59/2 0,12 1-31/3 */2 0-7", "cron(15 10 ? * 3#2 *)"} {
		f.Add(s, int64(1_800_000_000), "")
		f.Add(s, int64(1_700_000_000), "Europe/Paris")
	}
	f.Fuzz(func(t *testing.T, expr string, unix int64, zone string) {
		loc := time.UTC
		if zone != "" {
			l, err := time.LoadLocation(zone)
			if err != nil {
				return
			}
			loc = l
		}
		unix = unix % (200 * 365 * 86400) // within the years Next searches
		if unix < 0 {
			unix = -unix
		}
		after := time.Unix(unix, 0)
		spec, err := Parse(expr, loc, after.Add(-time.Hour))
		if err != nil {
			if !errors.Is(err, ErrBadExpr) {
				t.Fatalf("Parse(%q): error %v is not ErrBadExpr", expr, err)
			}
			return
		}
		checkNext(t, expr, spec, after)
	})
}
