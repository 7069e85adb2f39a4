package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mote-run/mote/internal/flow"
)

// VideoConfig configures the video scenario (examples/video).
type VideoConfig struct {
	Input   string    // a video file to encode; "" generates testsrc2
	Size    string    // generated input's size, WxH (default 1920x1080)
	Seconds float64   // generated input's length (default 60)
	Rate    int       // generated input's frame rate (default 30)
	Chunks  []float64 // chunk lengths in seconds: the first is timed against the baseline, all are swept
	Preset  string    // x264 preset, both sides (default veryfast)
	CRF     int       // x264 CRF, both sides (default 23)
}

func (c *VideoConfig) defaults() error {
	if c.Size == "" {
		c.Size = "1920x1080"
	}
	if c.Seconds <= 0 {
		c.Seconds = 60
	}
	if c.Rate <= 0 {
		c.Rate = 30
	}
	if len(c.Chunks) == 0 {
		c.Chunks = []float64{2, 1, 4, 10}
	}
	if c.Preset == "" {
		c.Preset = "veryfast"
	}
	if c.CRF == 0 {
		c.CRF = 23
	}
	if !regexp.MustCompile(`^\d+x\d+$`).MatchString(c.Size) {
		return fmt.Errorf("video size %q: want WxH", c.Size)
	}
	for _, s := range c.Chunks {
		if s < 1 {
			return fmt.Errorf("chunk length %gs: at least 1s (the generated input has a keyframe every second)", s)
		}
	}
	if c.CRF < 0 || c.CRF > 51 {
		return fmt.Errorf("crf %d out of range 0..51", c.CRF)
	}
	return nil
}

// videoJob is the video-job function's answer (examples/video/fn/video.py).
type videoJob struct {
	Output      []string           `json:"output"`
	Bytes       int64              `json:"bytes"`
	Chunks      int                `json:"chunks"`
	Frames      int                `json:"frames"`
	ChunkFrames []int              `json:"chunk_frames"`
	Times       map[string]float64 `json:"times"`
}

// encoded is one encode checked against the input.
type encoded struct {
	wall   time.Duration
	bytes  int64
	frames int
	psnr   float64
	chunks int
	cpu    time.Duration // the baseline's CPU time (user + system)
}

// Video runs examples/video through `mote serve`: the input is split into
// chunks, encoded in parallel by process functions running ffmpeg
// (libx264) under a Map, and joined; the baseline is one
// `ffmpeg -threads 2` encode of the same input with the same settings,
// timed in the same rounds. Every result is checked with ffprobe (codec,
// frame count, duration) and its PSNR against the input is compared with
// the baseline's (within 0.5 dB); a check that fails is an error. It then
// sweeps the chunk length (bits per frame at the quality CRF holds) and
// reports CPU billed against wall-clock GB-s from the usage API.
func Video(ctx context.Context, o Options) error {
	if err := o.defaults(); err != nil {
		return err
	}
	v := o.Video
	if err := v.defaults(); err != nil {
		return err
	}
	ffmpeg, err := NeedTool("ffmpeg", "ffmpeg")
	if err != nil {
		return err
	}
	ffprobe, err := NeedTool("ffprobe", "ffmpeg")
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "mote-bench-video-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	input := v.Input
	if input == "" {
		input = filepath.Join(tmp, "input.mkv")
		fmt.Fprintf(o.Out, "generating %gs of testsrc2 at %s, %d fps (x264 lossless, a keyframe every second)\n", v.Seconds, v.Size, v.Rate)
		if err := generateVideo(ctx, ffmpeg, input, v); err != nil {
			return err
		}
	}
	in, err := probeVideo(ctx, ffprobe, input)
	if err != nil {
		return fmt.Errorf("input %s: %w", input, err)
	}
	fmt.Fprintf(o.Out, "input: %s, %s %dx%d, %d frames, %.2f s\n", filepath.Base(input), in.codec, in.width, in.height, in.frames, in.duration)

	mote, err := StartMote(ctx, o.Mote, tmp)
	if err != nil {
		return err
	}
	defer mote.Stop()
	fn := filepath.Join(o.Examples, "video", "fn")
	if err := deploy(ctx, o.Mote, mote.URL, "video-job", fn); err != nil {
		return err
	}
	if err := deploy(ctx, o.Mote, mote.URL, "video-encode", fn, "--config", filepath.Join(fn, "encode.json")); err != nil {
		return err
	}
	if err := putFile(ctx, mote.URL, "video", "input", input); err != nil {
		return err
	}

	baseline := func() (encoded, error) {
		out := filepath.Join(tmp, "baseline.mp4")
		t0 := time.Now()
		cmd := exec.CommandContext(ctx, ffmpeg, "-nostdin", "-v", "error", "-threads", "2", "-i", input,
			"-map", "0:v:0", "-an", "-c:v", "libx264", "-preset", v.Preset, "-crf", strconv.Itoa(v.CRF),
			"-threads", "2", "-y", out)
		if b, err := cmd.CombinedOutput(); err != nil {
			return encoded{}, fmt.Errorf("baseline ffmpeg: %v: %s", err, b)
		}
		e := encoded{wall: time.Since(t0), chunks: 1, cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
		return e, checkEncode(ctx, ffmpeg, ffprobe, input, out, in, &e)
	}
	viaMote := func(chunk float64) (encoded, videoJob, error) {
		ev := map[string]any{"bucket": "video", "input": "input", "output": "output.mp4",
			"chunk_seconds": chunk, "crf": v.CRF, "preset": v.Preset}
		var job videoJob
		t0 := time.Now()
		if err := invokeJSON(mote.URL, "video-job", ev, &job); err != nil {
			return encoded{}, job, err
		}
		e := encoded{wall: time.Since(t0), chunks: job.Chunks}
		out := filepath.Join(tmp, "mote.mp4")
		if err := getObjects(ctx, mote.URL, "video", job.Output, out); err != nil {
			return e, job, err
		}
		return e, job, checkEncode(ctx, ffmpeg, ffprobe, input, out, in, &e)
	}

	// One untimed run warms the page cache and the functions' instances,
	// as the baseline's binary is warm after its first run.
	if _, _, err := viaMote(v.Chunks[0]); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	before, err := usage(mote.URL)
	if err != nil {
		return err
	}
	var bases, motes []encoded
	fmt.Fprintf(o.Out, "x264 preset %s, crf %d; %d rounds of baseline (ffmpeg -threads 2) then Mote (chunks of %gs)\n", v.Preset, v.CRF, o.Rounds, v.Chunks[0])
	for round := 1; round <= o.Rounds; round++ {
		b, err := baseline()
		if err != nil {
			return err
		}
		m, job, err := viaMote(v.Chunks[0])
		if err != nil {
			return err
		}
		bases, motes = append(bases, b), append(motes, m)
		fmt.Fprintf(o.Out, "  round %d  baseline %6.2f s (CPU %.2f s)  %.2f dB  |  mote %6.2f s  %.2f dB, %d chunks (read %.2fs split %.2fs encode %.2fs join %.2fs)  %.2f×\n",
			round, b.wall.Seconds(), b.cpu.Seconds(), b.psnr, m.wall.Seconds(), m.psnr, m.chunks,
			job.Times["read_s"], job.Times["split_s"], job.Times["encode_s"], job.Times["join_s"], m.wall.Seconds()/b.wall.Seconds())
	}
	after, err := usage(mote.URL)
	if err != nil {
		return err
	}

	fmt.Fprintf(o.Out, "\nchunk length sweep (one run each; the first row and the first chunk length: the timed run of median wall)\n\n| chunk | chunks | wall | bits/frame | vs single encode | PSNR |\n|---|---|---|---|---|---|\n")
	b := medianRun(bases)
	var worse []string
	single := float64(b.bytes*8) / float64(b.frames)
	fmt.Fprintf(o.Out, "| whole input (baseline) | 1 | %.2f s | %.0f | 1.000× | %.2f dB |\n", b.wall.Seconds(), single, b.psnr)
	for i, c := range v.Chunks {
		m := medianRun(motes)
		if i > 0 {
			if m, _, err = viaMote(c); err != nil {
				return fmt.Errorf("chunks of %gs: %w", c, err)
			}
		}
		if m.psnr < b.psnr-0.5 {
			worse = append(worse, fmt.Sprintf("chunks of %gs: PSNR %.2f dB, more than 0.5 dB below the single encode's %.2f dB", c, m.psnr, b.psnr))
		}
		bpf := float64(m.bytes*8) / float64(m.frames)
		fmt.Fprintf(o.Out, "| %gs | %d | %.2f s | %.0f | %.3f× | %.2f dB |\n", c, m.chunks, m.wall.Seconds(), bpf, bpf/single, m.psnr)
	}

	wall := func(e encoded) float64 { return e.wall.Seconds() }
	bw, mw := medianEnc(bases, wall), medianEnc(motes, wall)
	fmt.Fprintf(o.Out, "\nusage of the %d timed Mote runs (GET /v1/usage, as `mote usage` shows it)\n\n| function | invocations | CPU | billed GB-s | wall-clock GB-s | billed / wall-clock |\n|---|---|---|---|---|---|\n", o.Rounds)
	var tb, tl float64
	for _, name := range []string{"video-job", "video-encode"} {
		d := after[name].sub(before[name])
		tb, tl = tb+d.BilledGBs, tl+d.LambdaGBs
		fmt.Fprintf(o.Out, "| %s | %d | %.2f s | %.3f | %.3f | %s |\n", name, d.Invocations, float64(d.CPUMicros)/1e6, d.BilledGBs, d.LambdaGBs, share(d.BilledGBs, d.LambdaGBs))
	}
	fmt.Fprintf(o.Out, "| total | | | %.3f | %.3f | %s |\n", tb, tl, share(tb, tl))
	fmt.Fprintf(o.Out, "\nbaseline CPU over the same %d rounds: %.2f s\n", o.Rounds, sumCPU(bases).Seconds())
	fmt.Fprintf(o.Out, "\n| check | figure | target | |\n|---|---|---|---|\n")
	fmt.Fprintf(o.Out, "| wall time, Mote / baseline (medians) | %.2f s / %.2f s = %.2f× | ≤ 1.15× | %s |\n", mw, bw, mw/bw, verdict(mw/bw <= 1.15))
	dq := medianEnc(motes, psnrOf) - medianEnc(bases, psnrOf)
	fmt.Fprintf(o.Out, "| PSNR, Mote − baseline (medians) | %+.2f dB | ≥ −0.5 dB | %s |\n", dq, verdict(dq >= -0.5))
	fmt.Fprintf(o.Out, "| frames, duration, codec (ffprobe), every run | %d, %.2f s, h264 | as the input | checked |\n", in.frames, in.duration)
	if len(worse) > 0 {
		return fmt.Errorf("quality: %s", strings.Join(worse, "; "))
	}
	return nil
}

func psnrOf(e encoded) float64 { return e.psnr }

func sumCPU(es []encoded) time.Duration {
	var d time.Duration
	for _, e := range es {
		d += e.cpu
	}
	return d
}

// medianRun is the run of median wall time (the later of the two middle
// ones for an even count).
func medianRun(es []encoded) encoded {
	s := slices.Clone(es)
	slices.SortFunc(s, func(a, b encoded) int { return cmp.Compare(a.wall, b.wall) })
	return s[len(s)/2]
}

func medianEnc(es []encoded, f func(encoded) float64) float64 {
	v := make([]float64, len(es))
	for i, e := range es {
		v[i] = f(e)
	}
	return median(v)
}

func share(a, b float64) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f%%", 100*a/b)
}

// generateVideo writes v.Seconds of ffmpeg's moving test pattern to path,
// losslessly coded with a keyframe every second so that it splits at any
// whole second without re-encoding.
func generateVideo(ctx context.Context, ffmpeg, path string, v VideoConfig) error {
	rate := strconv.Itoa(v.Rate)
	cmd := exec.CommandContext(ctx, ffmpeg, "-nostdin", "-v", "error",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%s:rate=%d", v.Size, v.Rate),
		"-t", strconv.FormatFloat(v.Seconds, 'f', -1, 64), "-pix_fmt", "yuv420p",
		"-c:v", "libx264", "-preset", "ultrafast", "-qp", "0",
		"-g", rate, "-keyint_min", rate, "-sc_threshold", "0", "-y", path)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("generating the input: %v: %s", err, b)
	}
	return nil
}

// probed is what ffprobe says of a file's first video stream.
type probed struct {
	codec         string
	width, height int
	frames        int
	duration      float64
}

func probeVideo(ctx context.Context, ffprobe, path string) (probed, error) {
	out, err := exec.CommandContext(ctx, ffprobe, "-v", "error", "-select_streams", "v:0", "-count_packets",
		"-show_entries", "stream=codec_name,width,height,nb_read_packets:format=duration", "-of", "json", path).Output()
	if err != nil {
		return probed{}, fmt.Errorf("ffprobe: %w", err)
	}
	var r struct {
		Streams []struct {
			Codec   string `json:"codec_name"`
			Width   int    `json:"width"`
			Height  int    `json:"height"`
			Packets string `json:"nb_read_packets"`
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return probed{}, fmt.Errorf("ffprobe: %w", err)
	}
	if len(r.Streams) == 0 {
		return probed{}, errors.New("no video stream")
	}
	s := r.Streams[0]
	p := probed{codec: s.Codec, width: s.Width, height: s.Height}
	p.frames, _ = strconv.Atoi(s.Packets)
	p.duration, _ = strconv.ParseFloat(r.Format.Duration, 64)
	if p.frames == 0 {
		return p, errors.New("no video frames")
	}
	return p, nil
}

// checkEncode checks an encode of input against it: H.264, the input's
// size, frame count and duration (within a frame), and sets e's size,
// frame count and PSNR.
func checkEncode(ctx context.Context, ffmpeg, ffprobe, input, out string, in probed, e *encoded) error {
	p, err := probeVideo(ctx, ffprobe, out)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(out), err)
	}
	frame := 1 / (float64(in.frames) / in.duration)
	switch {
	case p.codec != "h264":
		return fmt.Errorf("%s: codec %s, want h264", filepath.Base(out), p.codec)
	case p.width != in.width || p.height != in.height:
		return fmt.Errorf("%s: %dx%d, want %dx%d", filepath.Base(out), p.width, p.height, in.width, in.height)
	case p.frames != in.frames:
		return fmt.Errorf("%s: %d frames, want %d", filepath.Base(out), p.frames, in.frames)
	case p.duration < in.duration-frame-1e-3 || p.duration > in.duration+frame+1e-3:
		return fmt.Errorf("%s: %.3f s, want %.3f s", filepath.Base(out), p.duration, in.duration)
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	e.bytes, e.frames = st.Size(), p.frames
	e.psnr, err = psnr(ctx, ffmpeg, out, input)
	return err
}

var psnrAvg = regexp.MustCompile(`PSNR .*average:([\d.]+|inf)`)

// psnr is ffmpeg's psnr filter's average over all frames of a against ref.
func psnr(ctx context.Context, ffmpeg, a, ref string) (float64, error) {
	b, err := exec.CommandContext(ctx, ffmpeg, "-nostdin", "-hide_banner", "-i", a, "-i", ref,
		"-lavfi", "[0:v][1:v]psnr", "-f", "null", "-").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("psnr: %v: %s", err, b)
	}
	m := psnrAvg.FindSubmatch(b)
	if m == nil {
		return 0, fmt.Errorf("psnr: no average in ffmpeg's output: %s", b)
	}
	if string(m[1]) == "inf" {
		return 100, nil
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// putFile streams a file into an object over the HTTP API.
func putFile(ctx context.Context, base, bucket, key, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+"/v1/objects/"+bucket+"/"+url.PathEscape(key), f)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("put %s/%s: %d %s", bucket, key, resp.StatusCode, b)
	}
	return nil
}

// getObjects writes the concatenation of the objects keys to path.
func getObjects(ctx context.Context, base, bucket string, keys []string, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, k := range keys {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/objects/"+bucket+"/"+url.PathEscape(k), nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("get %s/%s: %d", bucket, k, resp.StatusCode)
		}
		if err != nil {
			return err
		}
	}
	return f.Close()
}

// fnUsage is one function's usage totals.
type fnUsage struct {
	Invocations, CPUMicros int64
	BilledGBs, LambdaGBs   float64
}

func (a fnUsage) sub(b fnUsage) fnUsage {
	return fnUsage{a.Invocations - b.Invocations, a.CPUMicros - b.CPUMicros, a.BilledGBs - b.BilledGBs, a.LambdaGBs - b.LambdaGBs}
}

// usage reads every function's usage totals over the last day.
func usage(base string) (map[string]fnUsage, error) {
	q := url.Values{"from": {time.Now().Add(-24 * time.Hour).UTC().Format(time.RFC3339)}}
	resp, err := http.Get(base + "/v1/usage?" + q.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("usage: %d %s", resp.StatusCode, b)
	}
	var rep flow.UsageReport
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return nil, err
	}
	out := map[string]fnUsage{}
	for _, r := range rep.Rows {
		u := out[r.Function]
		u.Invocations += r.Invocations
		u.CPUMicros += r.CPUMicros
		u.BilledGBs += r.BilledGBs
		u.LambdaGBs += r.LambdaGBs
		out[r.Function] = u
	}
	return out, nil
}
