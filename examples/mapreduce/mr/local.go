package mr

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// Local runs job over input in this process, as the Mote functions do
// (same splits, kernels and key ranges) but with the shuffle in memory
// and workers goroutines taking the tasks of each phase: the single-process
// baseline. It returns each reducer's output and the shuffle's bytes.
func Local(job string, input []byte, maps, reduces, workers int) (outs [][]byte, shuffle int64, err error) {
	size := int64(len(input))
	var splitters []string
	if job == WordCount {
		var samples [][]byte
		for _, off := range SampleOffsets(size) {
			samples = append(samples, input[off:off+min(SampleLen, size-off)])
		}
		splitters = Splitters(samples, reduces)
		reduces = len(splitters) + 1
	}
	splits := Splits(job, size, maps)
	parts := make([][][]byte, len(splits)) // [mapper][reducer]
	var shuffled atomic.Int64
	err = parallel(len(splits), workers, func(i int) error {
		s := splits[i]
		var p [][]byte
		switch job {
		case Sort:
			var err error
			if p, err = SortMap(input[s.Off:s.Off+s.Len], reduces); err != nil {
				return err
			}
		case WordCount:
			off, n := ReadRange(s, size)
			own, err := OwnWords(input[off:off+n], s, size)
			if err != nil {
				return err
			}
			p = WCMap(own, splitters)
		default:
			return fmt.Errorf("unknown job %q", job)
		}
		for _, b := range p {
			shuffled.Add(int64(len(b)))
		}
		parts[i] = p
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	outs = make([][]byte, reduces)
	err = parallel(reduces, workers, func(r int) error {
		in := make([][]byte, len(splits))
		for m := range splits {
			in[m] = parts[m][r]
		}
		if job == Sort {
			outs[r] = SortReduce(in)
			return nil
		}
		var err error
		outs[r], err = WCReduce(in)
		return err
	})
	return outs, shuffled.Load(), err
}

// parallel runs f(0..n-1) on workers goroutines and returns the first error.
func parallel(n, workers int, f func(int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || errs[w] != nil {
					return
				}
				errs[w] = f(i)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
