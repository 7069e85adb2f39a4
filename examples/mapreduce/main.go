// Command mapreduce runs the MapReduce example end to end against a
// running `mote serve`: it generates the input deterministically, uploads
// it as an object, builds and deploys the function (./fn), runs the job
// (word count, sort or both), downloads the output objects and checks
// them against GNU coreutils (word count) or for order and the record
// multiset's checksum (sort). With -local it runs the same job in this
// process instead, with the shuffle in memory: the baseline.
//
//	go run . -server http://127.0.0.1:8080 -job both -size 64MiB
//
// See README.md.
package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mote-run/mote/examples/mapreduce/mr"
)

type options struct {
	server, token, mote string
	job, runtime        string
	size                int64
	maps, reduces, conc int
	workers             int
	local, check, json  bool
	work, dict          string
	seed                uint64
	failMap             int
	failMode            string
	bucket              string
}

func main() {
	var o options
	var size string
	server := os.Getenv("MOTE_SERVER")
	if server == "" {
		server = "http://127.0.0.1:8080"
	}
	flag.StringVar(&o.server, "server", server, "Mote server URL (env MOTE_SERVER)")
	flag.StringVar(&o.token, "token", os.Getenv("MOTE_TOKEN"), "bearer token (env MOTE_TOKEN)")
	flag.StringVar(&o.mote, "mote", "mote", "the mote binary, to deploy the function")
	flag.StringVar(&o.job, "job", "both", "sort, wordcount or both")
	flag.StringVar(&size, "size", "64MiB", "input size per job (KiB, MiB, GiB suffixes)")
	flag.IntVar(&o.maps, "maps", 0, "map tasks (default: one per 16 MiB, at least 4)")
	flag.IntVar(&o.reduces, "reduces", 0, "reduce tasks (default: as many as map tasks)")
	flag.IntVar(&o.conc, "conc", 2, "tasks at once (Map concurrency; the function gets conc+1 instances)")
	flag.StringVar(&o.runtime, "runtime", "process", "build the function as a native process function (process) or a wasm reactor (wasm)")
	flag.BoolVar(&o.local, "local", false, "run the in-memory single-process baseline instead of Mote")
	flag.IntVar(&o.workers, "workers", 2, "-local: worker goroutines")
	flag.BoolVar(&o.check, "check", true, "check the answer (GNU sort | uniq -c for word count; order and checksum for sort)")
	flag.BoolVar(&o.json, "json", false, "print each job's result as one JSON line on stdout")
	flag.StringVar(&o.work, "work", filepath.Join(os.TempDir(), "mote-mapreduce"), "directory for the generated inputs (kept for reuse) and the build")
	flag.StringVar(&o.dict, "dict", "/usr/share/dict/words", "word list for word count (Debian's wamerican)")
	flag.Uint64Var(&o.seed, "seed", 1, "input generator seed")
	flag.IntVar(&o.failMap, "fail-map", 0, "make map task N-1 fail its first attempt (0: none), to see Mote retry it")
	flag.StringVar(&o.failMode, "fail-mode", "error", `how the injected failure fails: "error" or "exit"`)
	flag.StringVar(&o.bucket, "bucket", "mapreduce", "object bucket for input and output")
	flag.Parse()
	var err error
	if o.size, err = parseSize(size); err != nil {
		fatal(err)
	}
	if o.maps <= 0 {
		o.maps = max(4, int(o.size>>24))
	}
	if o.reduces <= 0 {
		o.reduces = o.maps
	}
	jobs := []string{o.job}
	if o.job == "both" {
		jobs = []string{mr.WordCount, mr.Sort}
	}
	if err := os.MkdirAll(o.work, 0o755); err != nil {
		fatal(err)
	}
	if !o.local {
		if err := deploy(o); err != nil {
			fatal(err)
		}
	}
	for _, job := range jobs {
		if job != mr.Sort && job != mr.WordCount {
			fatal(fmt.Errorf("unknown job %q", job))
		}
		if err := runJob(o, job); err != nil {
			fatal(fmt.Errorf("%s: %w", job, err))
		}
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "mapreduce:", err)
	os.Exit(1)
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suf string
		m   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}} {
		if strings.HasSuffix(s, u.suf) {
			s, mult = strings.TrimSuffix(s, u.suf), u.m
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(n * float64(mult)), nil
}

// input generates (once) and returns the path of job's input file.
func input(o options, job string) (string, error) {
	path := filepath.Join(o.work, fmt.Sprintf("%s-%d-%d.in", job, o.size, o.seed))
	if st, err := os.Stat(path); err == nil && st.Size() > 0 {
		return path, nil
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return "", err
	}
	switch job {
	case mr.Sort:
		progress("generating %d records (%d bytes) in %s", o.size/mr.RecordSize, o.size/mr.RecordSize*mr.RecordSize, path)
		err = mr.GenRecords(f, o.size/mr.RecordSize, o.seed)
	case mr.WordCount:
		words, fromDict := mr.Words(o.dict)
		if fromDict {
			progress("generating %d bytes of text, Zipf over the %d words of %s, in %s", o.size, len(words), o.dict, path)
		} else {
			progress("%s is missing (apt-get install wamerican): generating %d bytes of text over %d made-up words", o.dict, o.size, len(words))
		}
		err = mr.GenText(f, o.size, words, o.seed)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	return path, err
}

// Result is one job's figures, printed with -json.
type Result struct {
	Job            string  `json:"job"`
	Mode           string  `json:"mode"` // "mote" or "local"
	Bytes          int64   `json:"bytes"`
	Maps           int     `json:"maps"`
	Reduces        int     `json:"reduces"`
	WallMs         float64 `json:"wall_ms"` // the job, from invocation to answer
	MapMs          float64 `json:"map_ms,omitempty"`
	ReduceMs       float64 `json:"reduce_ms,omitempty"`
	ShuffleBytes   int64   `json:"shuffle_bytes"`
	ShuffleWriteMs float64 `json:"shuffle_write_ms,omitempty"`
	ShuffleReadMs  float64 `json:"shuffle_read_ms,omitempty"`
	Retried        int     `json:"retried,omitempty"`
	Checked        bool    `json:"checked"`
}

func runJob(o options, job string) error {
	path, err := input(o, job)
	if err != nil {
		return err
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	res := Result{Job: job, Bytes: st.Size()}
	var output func(yield func([]byte) error) error
	if o.local {
		res.Mode = "local"
		progress("%s: running in this process with %d workers (%d maps, %d reduces)", job, o.workers, o.maps, o.reduces)
		t0 := time.Now()
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		outs, shuffle, err := mr.Local(job, data, o.maps, o.reduces, o.workers)
		if err != nil {
			return err
		}
		if err := writeLocal(o, job, outs); err != nil {
			return err
		}
		res.WallMs = ms(time.Since(t0))
		res.Maps, res.Reduces, res.ShuffleBytes = o.maps, len(outs), shuffle
		output = func(yield func([]byte) error) error {
			for _, b := range outs {
				if err := yield(b); err != nil {
					return err
				}
			}
			return nil
		}
	} else {
		res.Mode = "mote"
		key := "in/" + filepath.Base(path)
		if err := upload(o, key, path, st.Size()); err != nil {
			return err
		}
		run := mr.Task{Op: "run", Job: job, Bucket: o.bucket, Input: key, Size: st.Size(),
			Output: fmt.Sprintf("out/%s/%s/", job, runID()), Maps: o.maps, Reduces: o.reduces, Conc: o.conc,
			FailMap: o.failMap, FailMode: o.failMode}
		progress("%s: running %d map and %d reduce tasks on Mote, %d at once", job, o.maps, o.reduces, o.conc)
		t0 := time.Now()
		var rr mr.RunResult
		if err := invoke(o, run, &rr); err != nil {
			return err
		}
		res.WallMs = ms(time.Since(t0))
		res.Maps, res.Reduces, res.MapMs, res.ReduceMs = rr.Maps, rr.Reduces, rr.MapMs, rr.ReduceMs
		res.ShuffleBytes, res.ShuffleReadMs, res.Retried = rr.ShuffleBytes, rr.ShuffleReadMs, rr.Retried
		res.ShuffleWriteMs = rr.ShuffleWriteMs
		progress("%s: done in %.0f ms (map phase %.0f ms, reduce phase %.0f ms); shuffle %.1f MiB through ephemeral data; %d output objects",
			job, res.WallMs, rr.MapMs, rr.ReduceMs, float64(rr.ShuffleBytes)/(1<<20), rr.Objects)
		if rr.Retried > 0 {
			progress("%s: %d map task(s) failed an attempt and were retried by Mote", job, rr.Retried)
		}
		output = func(yield func([]byte) error) error { return download(o, run.Output, yield) }
	}
	if o.check {
		progress("%s: checking the output", job)
		switch job {
		case mr.Sort:
			err = checkSort(path, output)
		case mr.WordCount:
			err = checkWordCount(o, path, output)
		}
		if err != nil {
			return fmt.Errorf("wrong answer: %w", err)
		}
		res.Checked = true
		progress("%s: answer checked: correct", job)
	}
	if o.json {
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
	}
	return nil
}

// writeLocal writes the baseline's output files, as GNU sort -o does and
// as the reducers write objects (without their fsync).
func writeLocal(o options, job string, outs [][]byte) error {
	dir := filepath.Join(o.work, "local-out", job)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i, b := range outs {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("part-%05d", i)), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

func runID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// checkSort checks that the output is in key order and that its records
// are the input's: same count, same multiset checksum.
func checkSort(path string, output func(func([]byte) error) error) error {
	var in, out mr.Checksum
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1000*mr.RecordSize)
	for {
		n, err := io.ReadFull(f, buf)
		in.Add(buf[:n])
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
	}
	var prev []byte
	var rest []byte
	err = output(func(b []byte) error {
		if len(rest) > 0 {
			b = append(rest, b...)
		}
		n := len(b) / mr.RecordSize * mr.RecordSize
		out.Add(b[:n])
		for i := 0; i < n; i += mr.RecordSize {
			k := b[i : i+mr.KeySize]
			if prev != nil && bytes.Compare(prev, k) > 0 {
				return fmt.Errorf("record %d: key %q after %q: not in order", out.Records, k, prev)
			}
			prev = append(prev[:0], k...)
		}
		rest = append([]byte(nil), b[n:]...)
		return nil
	})
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("output ends with a partial record")
	}
	if in != out {
		return fmt.Errorf("output has %d records (checksum %x), input %d (checksum %x)", out.Records, out.Sum, in.Records, in.Sum)
	}
	return nil
}

// checkWordCount compares the output with GNU coreutils' count of the
// same input: tr ' ' '\n' < input | LC_ALL=C sort | uniq -c.
func checkWordCount(o options, path string, output func(func([]byte) error) error) error {
	want := path + ".uniq-c"
	if _, err := os.Stat(want); err != nil {
		progress("counting with GNU coreutils: tr ' ' '\\n' < input | sort | uniq -c")
		sh := fmt.Sprintf("tr ' ' '\\n' < %q | LC_ALL=C sort --parallel=2 -S 25%% -T %q | uniq -c > %q.tmp && mv %q.tmp %q",
			path, o.work, want, want, want)
		if out, err := exec.Command("sh", "-c", sh).CombinedOutput(); err != nil {
			return fmt.Errorf("coreutils: %v: %s", err, out)
		}
	}
	f, err := os.Open(want)
	if err != nil {
		return err
	}
	defer f.Close()
	expect := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 2 {
			continue // an empty word (an empty line) has no second field
		}
		n, err := strconv.ParseInt(fs[0], 10, 64)
		if err != nil {
			return fmt.Errorf("uniq -c line %q", sc.Text())
		}
		expect[fs[1]] = n
	}
	if err := sc.Err(); err != nil {
		return err
	}
	var got int
	var rest []byte
	var prev string
	err = output(func(b []byte) error {
		b = append(rest, b...)
		last := bytes.LastIndexByte(b, '\n')
		rest = append([]byte(nil), b[last+1:]...)
		for _, line := range bytes.Split(b[:max(last, 0)], []byte{'\n'}) {
			if len(line) == 0 {
				continue
			}
			w, c, ok := bytes.Cut(line, []byte{' '})
			n, err := strconv.ParseInt(string(c), 10, 64)
			if !ok || err != nil {
				return fmt.Errorf("output line %q", line)
			}
			if string(w) <= prev {
				return fmt.Errorf("output word %q after %q: not in order", w, prev)
			}
			prev = string(w)
			if expect[string(w)] != n {
				return fmt.Errorf("%q: counted %d, coreutils %d", w, n, expect[string(w)])
			}
			got++
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("output ends without a newline")
	}
	if got != len(expect) {
		return fmt.Errorf("output has %d words, coreutils %d", got, len(expect))
	}
	return nil
}

// HTTP: the runner uses only Mote's public API.

func request(o options, method, path string, body io.Reader, size int64) (*http.Response, error) {
	req, err := http.NewRequest(method, strings.TrimSuffix(o.server, "/")+path, body)
	if err != nil {
		return nil, err
	}
	if size >= 0 && body != nil {
		req.ContentLength = size
	}
	if o.token != "" {
		req.Header.Set("Authorization", "Bearer "+o.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	return resp, nil
}

func objectPath(o options, key string) string {
	return "/v1/objects/" + o.bucket + "/" + key
}

// upload puts the input file as an object unless one of its size is
// there (inputs are named by job, size and seed).
func upload(o options, key, path string, size int64) error {
	if resp, err := request(o, http.MethodHead, objectPath(o, key), nil, -1); err == nil {
		resp.Body.Close()
		if resp.ContentLength == size {
			progress("input %s/%s is already uploaded", o.bucket, key)
			return nil
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	t0 := time.Now()
	resp, err := request(o, http.MethodPut, objectPath(o, key), f, size)
	if err != nil {
		return err
	}
	resp.Body.Close()
	progress("uploaded %s to %s/%s (%.0f MB/s)", filepath.Base(path), o.bucket, key, float64(size)/1e6/time.Since(t0).Seconds())
	return nil
}

// download lists the output objects under prefix and yields their bytes
// in key order (the reducers' key ranges are in that order).
func download(o options, prefix string, yield func([]byte) error) error {
	var keys []string
	cursor := ""
	for {
		q := url.Values{"prefix": {prefix}, "cursor": {cursor}, "limit": {"1000"}}
		resp, err := request(o, http.MethodGet, "/v1/objects/"+o.bucket+"?"+q.Encode(), nil, -1)
		if err != nil {
			return err
		}
		var page struct {
			Objects []struct {
				Key string `json:"key"`
			} `json:"objects"`
			Next string `json:"next_cursor"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return err
		}
		for _, ob := range page.Objects {
			keys = append(keys, ob.Key)
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		resp, err := request(o, http.MethodGet, objectPath(o, k), nil, -1)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if err := yield(b); err != nil {
			return err
		}
	}
	return nil
}

func invoke(o options, ev any, v any) error {
	b, _ := json.Marshal(ev)
	resp, err := request(o, http.MethodPost, "/fn/mapreduce", bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if id := resp.Header.Get("X-Mote-Invocation-Id"); id != "" {
		progress("the run's call tree: mote trace %s", id)
	}
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("the driver answered %q", out)
	}
	return nil
}

// deploy builds ./fn and deploys it as "mapreduce" with the mote CLI.
func deploy(o options) error {
	src, err := filepath.Abs("fn")
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(src, "main.go")); err != nil {
		return errors.New("run this from examples/mapreduce (./fn holds the function)")
	}
	dir := filepath.Join(o.work, "fn-"+o.runtime)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg := map[string]any{
		"memory": "1GiB", "timeout": "15m", "max_instances": o.conc + 1, "max_queue": 100_000,
		"permissions": map[string]any{"read": []string{o.bucket}, "write": []string{o.bucket}, "invoke": []string{"mapreduce"}},
		"retry":       map[string]any{"attempts": 3, "backoff": "10ms"},
	}
	var artifact string
	build := exec.Command("go", "build", "-trimpath")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	switch o.runtime {
	case "wasm":
		artifact = filepath.Join(dir, "mapreduce.wasm")
		build.Args = append(build.Args, "-buildmode=c-shared", "-o", artifact, ".")
		build.Env = append(build.Env, "GOOS=wasip1", "GOARCH=wasm")
		cfg["runtime"] = "wasm"
	case "process":
		artifact = dir
		build.Args = append(build.Args, "-o", filepath.Join(dir, "bootstrap"), ".")
		cfg["runtime"], cfg["handler"] = "process", "./bootstrap"
	default:
		return fmt.Errorf("-runtime %q: want process or wasm", o.runtime)
	}
	build.Dir = src
	progress("building the function (%s) from %s", o.runtime, src)
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v: %s", err, out)
	}
	cfgPath := filepath.Join(o.work, "mote-"+o.runtime+".json")
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		return err
	}
	args := []string{"deploy", "mapreduce", artifact, "--server", o.server, "--config", cfgPath}
	if o.token != "" {
		args = append(args, "--token", o.token)
	}
	if out, err := exec.Command(o.mote, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("mote %s: %v: %s", strings.Join(args, " "), err, out)
	}
	progress("deployed the function as mapreduce on %s", o.server)
	return nil
}
