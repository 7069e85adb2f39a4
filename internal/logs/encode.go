package logs

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// appendLine appends l as one line of JSON, as encoding/json would write
// it (Line's field names and omissions), without its reflection and
// allocations for a plain line: the flusher writes every line there is.
func appendLine(b []byte, l *Line) []byte {
	b = append(b, `{"time":"`...)
	b = l.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","function":`...)
	b = appendString(b, l.Function)
	if l.Invocation != "" {
		b = append(b, `,"invocation":`...)
		b = appendString(b, l.Invocation)
	}
	if l.Stream != "" {
		b = append(b, `,"stream":`...)
		b = appendString(b, l.Stream)
	}
	if l.Text != "" {
		b = append(b, `,"text":`...)
		b = appendString(b, l.Text)
	}
	if l.Stream == StreamReport {
		b = append(b, `,"report":`...)
		b = appendReport(b, &l.Report)
	}
	return append(b, '}')
}

// appendReport appends r as encoding/json writes it.
func appendReport(b []byte, r *Report) []byte {
	b = append(b, `{"start":"`...)
	b = r.Start.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	str := func(name, v string) {
		if v != "" {
			b = append(b, `,"`...)
			b = append(b, name...)
			b = append(b, `":`...)
			b = appendString(b, v)
		}
	}
	num := func(name string, v int64, always bool) {
		if v != 0 || always {
			b = append(b, `,"`...)
			b = append(b, name...)
			b = append(b, `":`...)
			b = strconv.AppendInt(b, v, 10)
		}
	}
	str("version", r.Version)
	num("attempt", int64(r.Attempt), false)
	num("duration_us", r.DurationUs, true)
	num("billed_ms", r.BilledMs, true)
	num("cpu_us", r.CPUUs, true)
	num("memory_mb", r.MemoryMB, true)
	num("max_memory_mb", r.MaxMemMB, false)
	num("init_us", r.InitUs, false)
	str("error_code", r.ErrorCode)
	str("error", r.Error)
	str("error_type", r.ErrorType)
	if len(r.StackTrace) > 0 {
		b = append(b, `,"stack_trace":[`...)
		for i, t := range r.StackTrace {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, t)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string; invalid UTF-8 becomes U+FFFD,
// as encoding/json writes it.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
