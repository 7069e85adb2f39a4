package process

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Even polled, a loopback TCP round trip costs several microseconds: each
// send runs the whole TCP stack, both ways, in the sender's system call.
// For SDKs that speak it (the Go SDK), events and results therefore travel
// through a shared memory region instead, and the invocation channel's
// socket is only a doorbell for a side that stopped polling, and the
// carrier of payloads too large for the region.
//
// Each instance gets its own region: a sealed memfd (it can be neither
// shrunk nor grown, so the function cannot make Mote's accesses fault),
// passed to the process as fd 3 and named by MOTE_SHM_FD. It is laid out
// as a header page, then the event area, then the result area:
//
//	offset 0     evSeq    uint32  (Mote) number of the event published last
//	offset 4     evLen    uint32  (Mote) its frame's length, or shmOnSocket
//	offset 64    fnSleep  uint32  (function) 1 while it waits on the socket
//	offset 128   resSeq   uint32  (function) evSeq of the result published last
//	offset 132   resLen   uint32  (function) its frame's length, or shmOnSocket
//	offset 192   moteSleep uint32 (Mote) 1 while it waits on the socket
//	offset 256   magic, version, area size: uint32 each (Mote, at creation)
//	offset 4096  event area; then the result area, shmArea bytes each
//
// The frames are those of the invocation channel (hostconn.go) without
// their length prefix. To publish, a side writes the frame into its area,
// then its length, then (atomically) the sequence number, and then, if
// the other side has said it sleeps, writes one 0x00 byte to the socket.
// A waiting side polls the sequence number; when it stops polling it sets
// its sleep word, checks the sequence number once more and then reads the
// socket. Both steps are sequentially consistent atomics, so one side
// always sees the other's: a publication is never missed, at worst a
// doorbell is spurious (the reader skips 0x00 bytes). A frame too large
// for its area is published with the length shmOnSocket and then written
// to the socket, uvarint-length-prefixed as on the plain channel; its
// first byte is never 0x00, since frames are never empty.
//
// The region is also written by the function, which may be hostile: Mote
// copies a result out before parsing it, checks its length against the
// area and its request id against the call, and never trusts a sequence
// number it did not expect.
const (
	shmHeader   = 4096
	shmArea     = 64 << 10
	shmSize     = shmHeader + 2*shmArea
	shmMagic    = 0x65746f6d // "mote", little-endian
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

// EnvShmFD names the fd of the instance's shared memory region.
const EnvShmFD = "MOTE_SHM_FD"

// shmRegion is Mote's mapping of an instance's region.
type shmRegion struct {
	file *os.File // the memfd, handed to the process; closed after start

	// mu guards mem against unmapping while an invocation uses it:
	// invocations hold it shared, release takes it exclusively.
	mu  sync.RWMutex
	mem []byte
	seq uint32 // the last event published; used by the invoking goroutine only

	spin spinPolicy
}

// newShmRegion creates and maps a region.
func newShmRegion() (*shmRegion, error) {
	fd, err := unix.MemfdCreate("mote-invocations", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "mote-invocations")
	if err := f.Truncate(shmSize); err != nil {
		f.Close()
		return nil, fmt.Errorf("size memfd: %w", err)
	}
	// Sealed, the function can neither shrink the file under Mote's
	// mapping (a SIGBUS in Mote) nor change the seals.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal memfd: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, shmSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("map memfd: %w", err)
	}
	r := &shmRegion{file: f, mem: mem}
	binary.LittleEndian.PutUint32(mem[offMagic:], shmMagic)
	binary.LittleEndian.PutUint32(mem[offMagic+4:], shmVersion)
	binary.LittleEndian.PutUint32(mem[offMagic+8:], shmArea)
	r.spin.setWindow(spinResult)
	return r, nil
}

// closeFile closes Mote's copy of the memfd once the process has its own.
func (r *shmRegion) closeFile() {
	if r.file != nil {
		r.file.Close()
		r.file = nil
	}
}

// release unmaps the region, waiting for an invocation using it to end.
func (r *shmRegion) release() {
	r.closeFile()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mem != nil {
		_ = unix.Munmap(r.mem)
		r.mem = nil
	}
}

func (r *shmRegion) word(off int) *uint32 { return (*uint32)(unsafe.Pointer(&r.mem[off])) }

// errShmRegion: the region is gone (the instance closed).
var errShmRegion = errors.New("process: shared memory region released")

// invokeShm sends frame as event number r.seq+1 and returns the result's
// frame (at most limit bytes), read from the region (into ch.body's
// storage) or the socket. Callers hold r.mu shared.
func (r *shmRegion) invokeShm(ch *invChannel, frame []byte, limit uint64) ([]byte, error) {
	if r.mem == nil {
		return nil, errShmRegion
	}
	r.seq++
	seq := r.seq
	if len(frame) <= shmArea {
		copy(r.mem[shmHeader:], frame)
		atomic.StoreUint32(r.word(offEvLen), uint32(len(frame)))
		atomic.StoreUint32(r.word(offEvSeq), seq)
	} else {
		atomic.StoreUint32(r.word(offEvLen), shmOnSocket)
		atomic.StoreUint32(r.word(offEvSeq), seq)
		writeFrame(ch.bw, frame)
	}
	if atomic.LoadUint32(r.word(offFnSleep)) != 0 {
		ch.bw.WriteByte(0)
	}
	if ch.bw.Buffered() > 0 {
		if err := ch.bw.Flush(); err != nil {
			return nil, err
		}
	}
	if err := r.awaitResult(ch.br, seq); err != nil {
		return nil, err
	}
	n := atomic.LoadUint32(r.word(offResLen))
	if n == shmOnSocket {
		return readFrame(ch.br, &ch.body, limit)
	}
	if n > shmArea {
		return nil, errMalformed
	}
	ch.body = append(ch.body[:0], r.mem[shmHeader+shmArea:shmHeader+shmArea+int(n)]...)
	return ch.body, nil
}

// awaitResult waits until the function publishes the result of event seq:
// it polls the region (spinPolicy) and then sleeps on the socket.
func (r *shmRegion) awaitResult(br *bufio.Reader, seq uint32) error {
	resSeq := r.word(offResSeq)
	if r.spin.poll(func() bool { return atomic.LoadUint32(resSeq) == seq }) {
		return nil
	}
	sleep := r.word(offMoteSleep)
	for {
		atomic.StoreUint32(sleep, 1)
		if atomic.LoadUint32(resSeq) == seq {
			atomic.StoreUint32(sleep, 0)
			return nil
		}
		b, err := br.ReadByte()
		atomic.StoreUint32(sleep, 0)
		if err != nil {
			return err
		}
		if b != 0 {
			// A frame on the socket is published first, so the number
			// must be there now; otherwise the function broke protocol.
			br.UnreadByte()
			if atomic.LoadUint32(resSeq) != seq {
				return errMalformed
			}
			return nil
		}
		if atomic.LoadUint32(resSeq) == seq {
			return nil
		}
	}
}

// readFrame reads a uvarint-prefixed frame of at most limit bytes into
// *buf (reused), skipping doorbell bytes before it.
func readFrame(br *bufio.Reader, buf *[]byte, limit uint64) ([]byte, error) {
	n, err := readFrameLen(br)
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, errTooLarge
	}
	return readFrameBody(br, buf, n)
}

// readFrameLen reads a frame's length prefix, skipping the doorbell's
// 0x00 bytes before it.
func readFrameLen(br *bufio.Reader) (uint64, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		if b != 0 {
			br.UnreadByte()
			break
		}
	}
	return binary.ReadUvarint(br)
}

// readFrameBody reads a frame's n bytes into *buf.
func readFrameBody(br *bufio.Reader, buf *[]byte, n uint64) ([]byte, error) {
	b, err := appendFull(br, (*buf)[:0], int(n))
	*buf = b
	if err != nil {
		return nil, err
	}
	return b, nil
}

// writeFrame writes frame with its uvarint length prefix.
func writeFrame(bw *bufio.Writer, frame []byte) {
	var lenBuf [binary.MaxVarintLen64]byte
	bw.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(frame)))])
	bw.Write(frame)
}

// Errors of the framed channels.
var (
	// errMalformed: the function broke the channel's protocol.
	errMalformed = errors.New("process: malformed frame on a channel")
)

// resultFraming is what a result frame may add to the largest response:
// its kind, its request id and their lengths.
const resultFraming = 256
