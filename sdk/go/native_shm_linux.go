//go:build linux

package mote

import (
	"bufio"
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// On Mote, events and results travel through a shared memory region that
// the platform passes as the fd named by MOTE_SHM_FD, and the invocation
// channel's socket only wakes a side that stopped polling and carries
// frames too large for the region. The layout and protocol are Mote's
// (internal/runtime/process/shm.go in the Mote repository): a header page
// of sequence numbers, lengths and sleep flags, then an event area and a
// result area.
const (
	shmHeader   = 4096
	shmMagic    = 0x65746f6d
	shmVersion  = 1
	shmOnSocket = ^uint32(0)

	offEvSeq     = 0
	offEvLen     = 4
	offFnSleep   = 64
	offResSeq    = 128
	offResLen    = 132
	offMoteSleep = 192
	offMagic     = 256
)

// shmChannel is the function's side of the region.
type shmChannel struct {
	mem  []byte
	area int
	seq  uint32     // the last event taken
	w    pollWindow // how long to poll for the next event
}

// openShm maps the region Mote passed, or returns nil when there is none
// or it is not one this SDK understands (the channel then runs over the
// socket alone).
func openShm() *shmChannel {
	fd, err := strconv.Atoi(os.Getenv("MOTE_SHM_FD"))
	if err != nil || fd < 3 {
		return nil
	}
	syscall.CloseOnExec(fd) // the function's own children do not get it
	var st syscall.Stat_t
	if syscall.Fstat(fd, &st) != nil || st.Size < shmHeader {
		return nil
	}
	mem, err := syscall.Mmap(fd, 0, int(st.Size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil
	}
	area := int(binary.LittleEndian.Uint32(mem[offMagic+8:]))
	if binary.LittleEndian.Uint32(mem[offMagic:]) != shmMagic ||
		binary.LittleEndian.Uint32(mem[offMagic+4:]) != shmVersion ||
		area <= 0 || int64(shmHeader+2*area) != st.Size {
		syscall.Munmap(mem)
		return nil
	}
	return &shmChannel{mem: mem, area: area, w: newPollWindow(eventPoll)}
}

func (s *shmChannel) word(off int) *uint32 { return (*uint32)(unsafe.Pointer(&s.mem[off])) }

var errShmProtocol = errors.New("shared memory protocol violated")

// next waits for the next event and returns a copy of its frame: it polls
// the region for a while (pollWindow), then sleeps on the socket until
// Mote rings.
func (s *shmChannel) next(r *bufio.Reader) ([]byte, error) {
	evSeq := s.word(offEvSeq)
	if !s.poll(evSeq) {
		sleep := s.word(offFnSleep)
		for atomic.LoadUint32(evSeq) == s.seq {
			atomic.StoreUint32(sleep, 1)
			if atomic.LoadUint32(evSeq) != s.seq {
				atomic.StoreUint32(sleep, 0)
				break
			}
			b, err := r.ReadByte()
			atomic.StoreUint32(sleep, 0)
			if err != nil {
				return nil, err
			}
			if b != 0 {
				// A frame on the socket: its event was published first.
				r.UnreadByte()
				if atomic.LoadUint32(evSeq) == s.seq {
					return nil, errShmProtocol
				}
			}
		}
	}
	s.seq = atomic.LoadUint32(evSeq)
	n := atomic.LoadUint32(s.word(offEvLen))
	if n == shmOnSocket {
		return readFrame(r)
	}
	if int64(n) > int64(s.area) {
		return nil, errShmProtocol
	}
	return append([]byte(nil), s.mem[shmHeader:shmHeader+int(n)]...), nil
}

// poll polls for an event for up to the window, if this wait is due to
// poll, and reports whether one came.
func (s *shmChannel) poll(evSeq *uint32) bool {
	if atomic.LoadUint32(evSeq) != s.seq {
		return true
	}
	if !s.w.due() {
		return false
	}
	hit := spinUntil(s.w.max, func() bool { return atomic.LoadUint32(evSeq) != s.seq })
	s.w.record(hit)
	return hit
}

// answer publishes the result frame for the event taken last.
func (s *shmChannel) answer(w *bufio.Writer, frame []byte) error {
	if len(frame) <= s.area {
		copy(s.mem[shmHeader+s.area:], frame)
		atomic.StoreUint32(s.word(offResLen), uint32(len(frame)))
		atomic.StoreUint32(s.word(offResSeq), s.seq)
	} else {
		atomic.StoreUint32(s.word(offResLen), shmOnSocket)
		atomic.StoreUint32(s.word(offResSeq), s.seq)
		writeFrame(w, frame)
	}
	if atomic.LoadUint32(s.word(offMoteSleep)) != 0 {
		w.WriteByte(0)
	}
	if w.Buffered() > 0 {
		return w.Flush()
	}
	return nil
}
