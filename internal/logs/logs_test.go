package logs

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestRingKeepsLatestInOrder(t *testing.T) {
	s := New(3)
	for i := 1; i <= 5; i++ {
		s.Add(Line{Function: "f", Invocation: fmt.Sprint(i % 2), Text: fmt.Sprint(i)})
	}
	var got []string
	for _, l := range s.Tail("f", "", 0) {
		got = append(got, l.Text)
	}
	if want := "3 4 5"; strings.Join(got, " ") != want {
		t.Errorf("tail: got %v, want %s", got, want)
	}
	if got := s.Tail("f", "1", 0); len(got) != 2 || got[0].Text != "3" || got[1].Text != "5" {
		t.Errorf("per invocation: got %+v, want lines 3 and 5", got)
	}
	if got := s.Tail("f", "", 1); len(got) != 1 || got[0].Text != "5" {
		t.Errorf("tail 1: got %+v", got)
	}
	if got := s.Tail("nope", "", 0); got != nil {
		t.Errorf("unknown function: got %+v, want nil", got)
	}
}

func TestFollowAndLongLines(t *testing.T) {
	s := New(10)
	ch, stop := s.Follow("f")
	s.Add(Line{Function: "g", Text: "other"})
	s.Add(Line{Function: "f", Text: strings.Repeat("x", MaxLine+10)})
	select {
	case l := <-ch:
		if len(l.Text) > MaxLine+len("…") || l.Time.IsZero() {
			t.Errorf("line not cut or not stamped: len %d", len(l.Text))
		}
	case <-time.After(time.Second):
		t.Fatal("follower got nothing")
	}
	stop()
	stop()
	s.Add(Line{Function: "f", Text: "after stop"})
	select {
	case l := <-ch:
		t.Errorf("got %q after stop", l.Text)
	default:
	}
}
