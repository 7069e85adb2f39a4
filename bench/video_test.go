package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mote-run/mote/internal/gobuild"
)

// needFFmpeg installs ffmpeg with the example's script, or skips the test.
func needFFmpeg(t *testing.T) (ffmpeg, ffprobe string) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		if out, err := exec.Command("../examples/video/setup.sh").CombinedOutput(); err != nil {
			t.Skipf("ffmpeg is not installed and examples/video/setup.sh could not install it (%v): %s", err, out)
		}
	}
	ffmpeg, err1 := exec.LookPath("ffmpeg")
	ffprobe, err2 := exec.LookPath("ffprobe")
	if err1 != nil || err2 != nil {
		t.Skip("ffmpeg or ffprobe missing after examples/video/setup.sh")
	}
	return ffmpeg, ffprobe
}

// TestVideoEndToEnd runs the video scenario at a tiny size against a real
// `mote serve`: split, parallel encodes by process functions under a
// Map, join, then the ffprobe and PSNR checks against the single encode.
func TestVideoEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds mote and runs ffmpeg")
	}
	needFFmpeg(t)
	bin := filepath.Join(t.TempDir(), "mote")
	if out, err := exec.Command(gobuild.Go(), "build", "-o", bin, "../cmd/mote").CombinedOutput(); err != nil {
		t.Fatalf("building mote: %v\n%s", err, out)
	}
	var out bytes.Buffer
	err := Video(context.Background(), Options{
		Mote: bin, Examples: "../examples", Rounds: 1, Out: &out,
		Video: VideoConfig{Size: "320x240", Seconds: 3, Chunks: []float64{1, 3}, Preset: "ultrafast"},
	})
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| 1s | 3 |", "| 3s | 1 |", "| video-encode | 3 |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

// TestCheckEncodeRejects feeds checkEncode encodes that differ from their
// input in frame count and size: both must fail.
func TestCheckEncodeRejects(t *testing.T) {
	ffmpeg, ffprobe := needFFmpeg(t)
	ctx := context.Background()
	dir := t.TempDir()
	input := filepath.Join(dir, "in.mkv")
	if err := generateVideo(ctx, ffmpeg, input, VideoConfig{Size: "160x120", Seconds: 2, Rate: 10}); err != nil {
		t.Fatal(err)
	}
	in, err := probeVideo(ctx, ffprobe, input)
	if err != nil {
		t.Fatal(err)
	}
	if in.frames != 20 {
		t.Fatalf("generated input has %d frames, want 20", in.frames)
	}
	for _, c := range []struct {
		name, want string
		args       []string
	}{
		{"short", "19 frames, want 20", []string{"-frames:v", "19"}},
		{"scaled", "80x60, want 160x120", []string{"-vf", "scale=80:60"}},
	} {
		out := filepath.Join(dir, c.name+".mp4")
		args := append([]string{"-nostdin", "-v", "error", "-i", input}, c.args...)
		if b, err := exec.Command(ffmpeg, append(args, "-c:v", "libx264", "-y", out)...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", c.name, err, b)
		}
		var e encoded
		err := checkEncode(ctx, ffmpeg, ffprobe, input, out, in, &e)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", c.name, err, c.want)
		}
	}
	good := filepath.Join(dir, "good.mp4")
	if b, err := exec.Command(ffmpeg, "-nostdin", "-v", "error", "-i", input, "-c:v", "libx264", "-y", good).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	var e encoded
	if err := checkEncode(ctx, ffmpeg, ffprobe, input, good, in, &e); err != nil {
		t.Fatalf("a faithful encode was rejected: %v", err)
	}
	if e.psnr < 30 || e.frames != 20 {
		t.Errorf("faithful encode: got %.2f dB, %d frames; want > 30 dB, 20 frames", e.psnr, e.frames)
	}
	_ = os.Remove(good)
}
