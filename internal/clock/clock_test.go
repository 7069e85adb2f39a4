package clock

import (
	"testing"
	"time"
)

func TestFakeFiresInDeadlineOrder(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	f := NewFake(start)
	t2 := f.NewTimer(2 * time.Second)
	t1 := f.NewTimer(time.Second)
	fired := make(chan struct{})
	f.AfterFunc(3*time.Second, func() { close(fired) })
	stopped := f.NewTimer(time.Second)
	if !stopped.Stop() {
		t.Error("Stop of a pending timer = false, want true")
	}
	if got := f.Waiters(); got != 3 {
		t.Fatalf("Waiters = %d, want 3", got)
	}
	f.Advance(1500 * time.Millisecond)
	select {
	case at := <-t1.C():
		if want := start.Add(time.Second); !at.Equal(want) {
			t.Errorf("t1 fired at %v, want %v", at, want)
		}
	default:
		t.Fatal("t1 did not fire at +1.5 s")
	}
	select {
	case <-t2.C():
		t.Fatal("t2 fired at +1.5 s, want +2 s")
	case <-stopped.C():
		t.Fatal("a stopped timer fired")
	case <-fired:
		t.Fatal("AfterFunc(3 s) ran at +1.5 s")
	default:
	}
	f.Advance(2 * time.Second)
	<-t2.C()
	<-fired
	if got := f.Now(); !got.Equal(start.Add(3500 * time.Millisecond)) {
		t.Errorf("Now = %v, want +3.5 s", got)
	}
}

func TestFakeTicker(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	k := f.NewTicker(time.Second)
	for i := 1; i <= 3; i++ {
		f.Advance(time.Second)
		if at := <-k.C(); at.Unix() != int64(i) {
			t.Errorf("tick %d at %v", i, at.Unix())
		}
	}
	k.Stop()
	f.Advance(time.Hour)
	select {
	case <-k.C():
		t.Error("a stopped ticker ticked")
	default:
	}
}

func TestWaitForWaiters(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	done := make(chan struct{})
	go func() {
		tm := f.NewTimer(time.Minute)
		<-tm.C()
		close(done)
	}()
	f.WaitForWaiters(1)
	f.Advance(time.Minute)
	<-done
}
