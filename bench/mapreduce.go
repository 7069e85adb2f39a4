package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mote-run/mote/internal/gobuild"
)

// mrResult is one line of examples/mapreduce's -json output.
type mrResult struct {
	Job            string  `json:"job"`
	Mode           string  `json:"mode"`
	Bytes          int64   `json:"bytes"`
	Maps           int     `json:"maps"`
	Reduces        int     `json:"reduces"`
	WallMs         float64 `json:"wall_ms"`
	MapMs          float64 `json:"map_ms"`
	ReduceMs       float64 `json:"reduce_ms"`
	ShuffleBytes   int64   `json:"shuffle_bytes"`
	ShuffleWriteMs float64 `json:"shuffle_write_ms"`
	ShuffleReadMs  float64 `json:"shuffle_read_ms"`
	Checked        bool    `json:"checked"`
}

// MapReduce runs examples/mapreduce (word count and sort, issue 14) at
// Options.Size per job (default 1 GiB) through `mote serve` and, in the
// same run, its baselines: the same kernels in one Go process with the
// shuffle in memory and 2 workers (the runner's -local), and, for sort,
// GNU sort --parallel=2 -S 50% on the same records. The first round
// checks every answer (coreutils for word count, order and checksum for
// sort) and is not counted; medians of the others are reported.
func MapReduce(ctx context.Context, o Options) error {
	if err := o.defaults(); err != nil {
		return err
	}
	size := o.Size
	if size == "" {
		size = "1GiB"
	}
	tmp, err := os.MkdirTemp("", "mote-bench-mapreduce-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	src, err := filepath.Abs(filepath.Join(o.Examples, "mapreduce"))
	if err != nil {
		return err
	}
	runner := filepath.Join(tmp, "mapreduce")
	fmt.Fprintf(o.Out, "building %s\n", src)
	if out, err := exec.CommandContext(ctx, gobuild.Go(), "build", "-C", src, "-o", runner, ".").CombinedOutput(); err != nil {
		return fmt.Errorf("building the runner: %v\n%s", err, out)
	}
	mote, err := StartMote(ctx, o.Mote, tmp)
	if err != nil {
		return err
	}
	defer mote.Stop()
	work := filepath.Join(tmp, "work")
	env := append(os.Environ(), "PATH="+filepath.Dir(gobuild.Go())+string(os.PathListSeparator)+os.Getenv("PATH"))
	run := func(check bool, args ...string) ([]mrResult, error) {
		args = append([]string{"-server", mote.URL, "-mote", o.Mote, "-size", size, "-work", work, "-json",
			"-check=" + strconv.FormatBool(check)}, args...)
		cmd := exec.CommandContext(ctx, runner, args...)
		cmd.Dir, cmd.Env = src, env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("mapreduce %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
		}
		var rs []mrResult
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			var r mrResult
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				return nil, fmt.Errorf("mapreduce answered %q: %v", line, err)
			}
			rs = append(rs, r)
		}
		return rs, nil
	}
	gnuSort := func(in string) (float64, error) {
		out := filepath.Join(tmp, "gnu-sorted")
		defer os.Remove(out)
		cmd := exec.CommandContext(ctx, "sort", "--parallel=2", "-S", "50%", "-T", tmp, "-o", out, in)
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		t0 := time.Now()
		if b, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("GNU sort: %v: %s", err, b)
		}
		return float64(time.Since(t0).Microseconds()) / 1e3, nil
	}

	fmt.Fprintf(o.Out, "MapReduce at %s per job on %s, %d rounds after a checked warm-up round\n", size, mote.URL, o.Rounds)
	type key struct{ job, mode string }
	res := map[key][]mrResult{}
	var gnu []float64
	for round := -1; round < o.Rounds; round++ {
		check := round < 0
		var all []mrResult
		for _, args := range [][]string{{"-local", "-workers", "2"}, {}} {
			rs, err := run(check, args...)
			if err != nil {
				return err
			}
			all = append(all, rs...)
		}
		in, err := filepath.Glob(filepath.Join(work, "sort-*.in"))
		if err != nil || len(in) != 1 {
			return fmt.Errorf("the sort input is not in %s", work)
		}
		g, err := gnuSort(in[0])
		if err != nil {
			return err
		}
		if check {
			fmt.Fprintf(o.Out, "  warm-up round: every answer checked\n")
			continue
		}
		gnu = append(gnu, g)
		for _, r := range all {
			res[key{r.Job, r.Mode}] = append(res[key{r.Job, r.Mode}], r)
			fmt.Fprintf(o.Out, "  round %d %-9s %-5s %8.0f ms", round+1, r.Job, r.Mode, r.WallMs)
			if r.Mode == "mote" {
				fmt.Fprintf(o.Out, "  (map %.0f ms, reduce %.0f ms, shuffle %.0f MiB)", r.MapMs, r.ReduceMs, float64(r.ShuffleBytes)/(1<<20))
			}
			fmt.Fprintln(o.Out)
		}
		fmt.Fprintf(o.Out, "  round %d GNU sort --parallel=2 -S 50%% %8.0f ms\n", round+1, g)
	}
	m := func(job, mode string, f func(mrResult) float64) float64 {
		var v []float64
		for _, r := range res[key{job, mode}] {
			v = append(v, f(r))
		}
		return median(v)
	}
	wall := func(r mrResult) float64 { return r.WallMs }
	fmt.Fprintf(o.Out, "\nmedians of %d rounds, %s per job\n\n| job | Mote | Go, one process, 2 workers | GNU sort | Mote / Go | shuffle | shuffle write, read (per task) |\n|---|---|---|---|---|---|---|\n", o.Rounds, size)
	for _, job := range []string{"wordcount", "sort"} {
		mo, lo := m(job, "mote", wall), m(job, "local", wall)
		g := "—"
		if job == "sort" {
			g = fmt.Sprintf("%.0f ms", median(gnu))
		}
		shuffle := m(job, "mote", func(r mrResult) float64 { return float64(r.ShuffleBytes) / 1e6 })
		wr := m(job, "mote", func(r mrResult) float64 { return float64(r.ShuffleBytes) / 1e3 / r.ShuffleWriteMs })
		rd := m(job, "mote", func(r mrResult) float64 { return float64(r.ShuffleBytes) / 1e3 / r.ShuffleReadMs })
		fmt.Fprintf(o.Out, "| %s | %.0f ms | %.0f ms | %s | %.2f× | %.0f MB, %.0f MB/s of the job's wall time | %.0f / %.0f MB/s |\n",
			job, mo, lo, g, mo/lo, shuffle, shuffle/(mo/1e3), wr, rd)
	}
	fmt.Fprintf(o.Out, "\n| check | figure | target | |\n|---|---|---|---|\n")
	for _, job := range []string{"wordcount", "sort"} {
		r := m(job, "mote", wall) / m(job, "local", wall)
		fmt.Fprintf(o.Out, "| %s: Mote / single Go process | %.2f× | ≤ 1.3× | %s |\n", job, r, verdict(r <= 1.3))
	}
	return nil
}
