package process

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/host"
)

// TestShmRegionSealed: the function holds the region's fd, but can
// neither shrink it under Mote's mapping (which would fault Mote) nor grow
// it, even through a fresh open of the file, and the seals are final.
func TestShmRegionSealed(t *testing.T) {
	r, err := newShmRegion()
	if err != nil {
		t.Fatal(err)
	}
	defer r.release()
	f, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(r.file.Fd())), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, size := range []int64{0, shmSize - 1, shmSize + 4096} {
		if err := f.Truncate(size); !errors.Is(err, syscall.EPERM) {
			t.Errorf("truncate to %d: got %v, want EPERM", size, err)
		}
	}
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if want := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL; err != nil || seals != want {
		t.Errorf("seals: got %#x, %v, want %#x", seals, err, want)
	}
	if got := binary.LittleEndian.Uint32(r.mem[offMagic:]); got != shmMagic {
		t.Errorf("magic: got %#x, want %#x", got, shmMagic)
	}
}

// fakeShmFunction is the function's side of a region and channel, driven
// by a test: it takes each event and answers what answer says.
type fakeShmFunction struct {
	r    *shmRegion
	conn net.Conn
	br   *bufio.Reader
	seq  uint32
}

// shmPair is Mote's side of an invocation channel with a region, and a
// fake function on the other end, both closed when the test ends.
func shmPair(t *testing.T) (*invChannel, *fakeShmFunction) {
	t.Helper()
	r, err := newShmRegion()
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	t.Cleanup(func() {
		a.Close()
		b.Close()
		r.release()
	})
	sc := newSpinConn(a, 0)
	ch := &invChannel{c: sc, br: bufio.NewReader(sc), bw: bufio.NewWriter(sc), shm: r, dead: make(chan struct{})}
	return ch, &fakeShmFunction{r: r, conn: b, br: bufio.NewReader(b)}
}

// take waits (polling) for the next event and returns its frame.
func (f *fakeShmFunction) take(t *testing.T) []byte {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for atomic.LoadUint32(f.r.word(offEvSeq)) == f.seq {
		if time.Now().After(deadline) {
			t.Fatal("no event published")
		}
	}
	f.seq = atomic.LoadUint32(f.r.word(offEvSeq))
	n := atomic.LoadUint32(f.r.word(offEvLen))
	if n == shmOnSocket {
		var body []byte
		frame, err := readFrame(f.br, &body, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		return frame
	}
	return bytes.Clone(f.r.mem[shmHeader : shmHeader+int(n)])
}

// answer publishes frame as the result of the event taken last, with
// length n written into the header (normally len(frame)), and rings.
func (f *fakeShmFunction) answer(frame []byte, n uint32) {
	if n == shmOnSocket {
		atomic.StoreUint32(f.r.word(offResLen), n)
		atomic.StoreUint32(f.r.word(offResSeq), f.seq)
		f.conn.Write(append(binary.AppendUvarint(nil, uint64(len(frame))), frame...))
	} else {
		copy(f.r.mem[shmHeader+shmArea:], frame)
		atomic.StoreUint32(f.r.word(offResLen), n)
		atomic.StoreUint32(f.r.word(offResSeq), f.seq)
	}
	if atomic.LoadUint32(f.r.word(offMoteSleep)) != 0 {
		f.conn.Write([]byte{0})
	}
}

// TestShmInvocations: events and results of every size cross the region
// (or, too large for it, the socket); results that lie about their length,
// their request or their kind fail the invocation cleanly, whether Mote
// finds them while polling or after sleeping on the socket.
func TestShmInvocations(t *testing.T) {
	big := bytes.Repeat([]byte("x"), shmArea+1)
	for _, tc := range []struct {
		name    string
		payload []byte
		delay   time.Duration // before answering: past Mote's polling window
		answer  func(f *fakeShmFunction, id string)
		want    string
		code    errs.Code
	}{
		{"ok", []byte("payload"), 0, func(f *fakeShmFunction, id string) {
			fr := host.AppendArgs(nil, []byte("ok"), []byte(id), []byte("out"))
			f.answer(fr, uint32(len(fr)))
		}, "out", ""},
		{"ok after sleeping", []byte("payload"), 5 * time.Millisecond, func(f *fakeShmFunction, id string) {
			fr := host.AppendArgs(nil, []byte("ok"), []byte(id), []byte("late"))
			f.answer(fr, uint32(len(fr)))
		}, "late", ""},
		{"large both ways", big, 0, func(f *fakeShmFunction, id string) {
			fr := host.AppendArgs(nil, []byte("ok"), []byte(id), big)
			f.answer(fr, shmOnSocket)
		}, string(big), ""},
		{"large result after sleeping", []byte("p"), 5 * time.Millisecond, func(f *fakeShmFunction, id string) {
			fr := host.AppendArgs(nil, []byte("ok"), []byte(id), big)
			f.answer(fr, shmOnSocket)
		}, string(big), ""},
		{"error", []byte("p"), 0, func(f *fakeShmFunction, id string) {
			fr := host.AppendArgs(nil, []byte("error"), []byte(id), []byte(`{"errorMessage":"bad","errorType":"E"}`))
			f.answer(fr, uint32(len(fr)))
		}, "", errs.FunctionError},
		{"length past the area", []byte("p"), 0, func(f *fakeShmFunction, id string) {
			fr := host.AppendArgs(nil, []byte("ok"), []byte(id), nil)
			f.answer(fr, shmArea+1)
		}, "", errs.FunctionError},
		{"wrong id", []byte("p"), 0, func(f *fakeShmFunction, id string) {
			fr := host.AppendArgs(nil, []byte("ok"), []byte("other"), nil)
			f.answer(fr, uint32(len(fr)))
		}, "", errs.FunctionError},
		{"garbage", []byte("p"), 0, func(f *fakeShmFunction, id string) { f.answer([]byte{0xff}, 1) }, "", errs.FunctionError},
		{"frame on the socket, unpublished", []byte("p"), 5 * time.Millisecond, func(f *fakeShmFunction, id string) {
			f.conn.Write([]byte{3, 'a', 'b', 'c'})
		}, "", errs.FunctionError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, cl := channelInstance(t)
			cl.ev.Payload = tc.payload
			ch, f := shmPair(t)
			done := make(chan error, 1)
			go func() { done <- in.invokeChannel(ch, cl) }()
			ev := f.take(t)
			parts, err := host.ParseArgs(ev)
			if err != nil || len(parts) != 5 || string(parts[0]) != cl.id || !bytes.Equal(parts[4], tc.payload) {
				t.Fatalf("event frame: %d parts, %v", len(parts), err)
			}
			time.Sleep(tc.delay)
			tc.answer(f, cl.id)
			select {
			case <-cl.done:
			case <-time.After(5 * time.Second):
				t.Fatal("invocation never finished")
			}
			if errs.CodeOf(cl.err) != tc.code || tc.code == "" && string(cl.output) != tc.want {
				t.Errorf("got %d bytes, %v; want %d bytes, code %q", len(cl.output), cl.err, len(tc.want), tc.code)
			}
			<-done
		})
	}
}

// TestShmSequence: a run of invocations on one region, some answered at
// once and some after Mote went to sleep, each gets its own result.
func TestShmSequence(t *testing.T) {
	in, _ := channelInstance(t)
	ch, f := shmPair(t)
	for i := 0; i < 20; i++ {
		_, cl := channelInstance(t)
		cl.id = "req-" + strconv.Itoa(i)
		done := make(chan error, 1)
		go func() { done <- in.invokeChannel(ch, cl) }()
		ev := f.take(t)
		parts, _ := host.ParseArgs(ev)
		if i%3 == 0 {
			time.Sleep(2 * time.Millisecond)
		}
		fr := host.AppendArgs(nil, []byte("ok"), parts[0], []byte("out-"+string(parts[0])))
		f.answer(fr, uint32(len(fr)))
		if err := <-done; err != nil {
			t.Fatalf("invocation %d: %v", i, err)
		}
		if got, want := string(cl.output), "out-"+cl.id; got != want {
			t.Errorf("invocation %d: got %q, want %q", i, got, want)
		}
	}
}

// TestShmLayoutMatchesGoSDK: the Go SDK is a module of its own and cannot
// import this package, so it repeats the region's layout; its constants
// must say what Mote's say.
func TestShmLayoutMatchesGoSDK(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(repoRoot(t), "sdk", "go", "native_shm_linux.go"))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]uint64{
		"shmHeader": shmHeader, "shmMagic": shmMagic, "shmVersion": shmVersion, "shmOnSocket": uint64(shmOnSocket),
		"offEvSeq": offEvSeq, "offEvLen": offEvLen, "offFnSleep": offFnSleep, "offResSeq": offResSeq,
		"offResLen": offResLen, "offMoteSleep": offMoteSleep, "offMagic": offMagic,
	} {
		m := regexp.MustCompile(`(?m)^\s*` + name + `\s*=\s*(\S+)\s*$`).FindSubmatch(src)
		if m == nil {
			t.Errorf("%s: not defined in the Go SDK", name)
			continue
		}
		got, err := strconv.ParseUint(string(m[1]), 0, 64)
		if string(m[1]) == "^uint32(0)" {
			got, err = uint64(^uint32(0)), nil
		}
		if err != nil || got != want {
			t.Errorf("%s: the Go SDK says %s, Mote %#x", name, m[1], want)
		}
	}
}

// TestGoSDKSharedMemory: the Go SDK takes the shared memory channel, and
// payloads of every size come back whole, whether each side finds the
// other's message while polling or is woken by the socket.
func TestGoSDKSharedMemory(t *testing.T) {
	rt := newRuntime(t)
	in := startInstance(t, rt, langSpec(t, "go-sdk")).(*instance)
	if ch := in.inv.Load(); ch == nil || ch.shm == nil {
		t.Fatalf("the Go SDK did not open the shared memory channel (channel %v)", ch)
	}
	for i, tc := range []struct {
		size  int
		pause time.Duration // before the invocation: both sides stop polling
	}{
		{10, 0}, {shmArea - 64, 0}, {shmArea + 1, 0}, {10, 5 * time.Millisecond},
		{3 * shmArea, 5 * time.Millisecond}, {10, 0}, {100, 5 * time.Millisecond}, {10, 0},
	} {
		time.Sleep(tc.pause)
		payload := bytes.Repeat([]byte{byte('a' + i)}, tc.size)
		ev := event(string(payload))
		res, _, err := in.Invoke(context.Background(), ev)
		if err != nil {
			t.Fatalf("invocation %d (%d bytes): %v", i, tc.size, err)
		}
		if !bytes.Equal(res.Output, payload) {
			t.Errorf("invocation %d: got %d bytes back, want the %d sent", i, len(res.Output), tc.size)
		}
	}
}
