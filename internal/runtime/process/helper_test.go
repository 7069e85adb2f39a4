package process

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/host"
	"github.com/mote-run/mote/internal/sandbox"
	"golang.org/x/sys/unix"
)

// The test binary doubles as the sandbox init (MaybeRunInit) and as a set
// of small Runtime API functions (MOTE_TEST_FN names one), so the tests
// run real processes without building anything.

// fnDir is a world-readable directory holding a copy of the test binary as
// "fn", since the unprivileged user cannot reach go test's build dir.
var fnDir string

func TestMain(m *testing.M) {
	sandbox.MaybeRunInit()
	if name := os.Getenv("MOTE_TEST_FN"); name != "" {
		os.Exit(runTestFunction(name))
	}
	dir, err := os.MkdirTemp("", "mote-process-test-")
	if err != nil {
		panic(err)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		if err := os.Chmod(dir, 0o755); err != nil {
			panic(err)
		}
		self, err := os.Executable()
		if err != nil {
			panic(err)
		}
		if err := copyFile(self, filepath.Join(dir, "fn"), 0o755); err != nil {
			panic(err)
		}
		fnDir = dir
		return m.Run()
	}()
	os.Exit(code)
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}

// client is a minimal Runtime API client, as a custom runtime would write.
type client struct {
	base string
	hc   *http.Client
}

func (c *client) next() (id string, hdr http.Header, payload []byte, err error) {
	resp, err := c.hc.Get(c.base + "/2018-06-01/runtime/invocation/next")
	if err != nil {
		return "", nil, nil, err
	}
	defer resp.Body.Close()
	payload, err = io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", nil, nil, fmt.Errorf("next: %s", resp.Status)
	}
	return resp.Header.Get("Lambda-Runtime-Aws-Request-Id"), resp.Header, payload, err
}

func (c *client) post(path string, body []byte) (int, []byte) {
	resp, err := c.hc.Post(c.base+path, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (c *client) respond(id string, body []byte) {
	if code, b := c.post("/2018-06-01/runtime/invocation/"+id+"/response", body); code != 202 {
		fmt.Fprintf(os.Stderr, "respond: %d %s\n", code, b)
	}
}

func (c *client) hostCall(id, op string, args ...[]byte) (int, []byte) {
	req, _ := http.NewRequest("POST", c.base+"/2018-06-01/mote/call/"+op, bytes.NewReader(host.AppendArgs(nil, args...)))
	req.Header.Set("Lambda-Runtime-Aws-Request-Id", id)
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// runTestFunction is the body of every test function.
func runTestFunction(name string) int {
	c := &client{base: "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API"), hc: &http.Client{}}
	switch name {
	case "exit-at-start":
		fmt.Fprintln(os.Stderr, "boom: missing configuration")
		return 3
	case "init-error":
		c.post("/2018-06-01/runtime/init/error", []byte(`{"errorMessage":"cannot load model","errorType":"Runtime.ImportModuleError"}`))
		return 1
	case "silent":
		time.Sleep(time.Hour)
	}
	for {
		id, hdr, payload, err := c.next()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		switch name {
		case "echo":
			c.respond(id, payload)
		case "inspect":
			host, _ := os.Hostname()
			env := map[string]string{}
			for _, k := range []string{"AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_REGION", "_HANDLER", "LAMBDA_TASK_ROOT", "AWS_LAMBDA_LOG_STREAM_NAME", "GREETING", "TMPDIR"} {
				env[k] = os.Getenv(k)
			}
			b, _ := json.Marshal(map[string]any{
				"payload": string(payload), "id": id,
				"deadline": hdr.Get("Lambda-Runtime-Deadline-Ms"),
				"arn":      hdr.Get("Lambda-Runtime-Invoked-Function-Arn"),
				"trace":    hdr.Get("Lambda-Runtime-Trace-Id"),
				"uid":      os.Getuid(), "pid": os.Getpid(), "hostname": host, "env": env,
				"tmp_writable": os.WriteFile(filepath.Join(os.Getenv("TMPDIR"), "x"), []byte("x"), 0o600) == nil,
				"dir_writable": os.WriteFile("written-by-function", []byte("x"), 0o600) == nil,
				"net":          netReachable(),
			})
			c.respond(id, b)
		case "fail":
			c.post("/2018-06-01/runtime/invocation/"+id+"/error", []byte(`{"errorMessage":"bad input","errorType":"ValueError"}`))
		case "crash":
			fmt.Fprintln(os.Stderr, "about to crash")
			os.Exit(2)
		case "hang":
			// A child too, to see the whole tree go at the deadline.
			_ = exec.Command("sleep", "41.5").Start()
			time.Sleep(time.Hour)
		case "log":
			fmt.Println("line one")
			fmt.Fprintln(os.Stderr, "line two")
			fmt.Print("no newline")
			c.respond(id, []byte(`"ok"`))
		case "hostcall":
			code, b := c.hostCall(id, string(payload), []byte("k1"), []byte("v1"))
			c.respond(id, []byte(strconv.Itoa(code)+" "+string(b)))
		case "spin":
			// 60 ms of CPU (by this thread's CPU clock, so a busy machine
			// does not shorten it), then 150 ms blocked: only the first
			// is billed.
			runtime.LockOSThread()
			var ts unix.Timespec
			_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
			end := ts.Nano() + int64(60*time.Millisecond)
			n := 0
			for ts.Nano() < end {
				n++
				_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
			}
			runtime.UnlockOSThread()
			time.Sleep(150 * time.Millisecond)
			c.respond(id, []byte(strconv.Itoa(n%2)))
		case "oom":
			var hold [][]byte
			for i := 0; i < 64; i++ {
				b := make([]byte, 16<<20)
				for j := range b {
					b[j] = byte(j)
				}
				hold = append(hold, b)
			}
			c.respond(id, []byte(strconv.Itoa(len(hold))))
		case "forkbomb":
			started, failed := 0, 0
			for i := 0; i < 200; i++ {
				if err := exec.Command("sleep", "42.5").Start(); err != nil {
					failed++
					continue
				}
				started++
			}
			c.respond(id, []byte(fmt.Sprintf(`{"started":%d,"failed":%d}`, started, failed)))
		case "background":
			// Work left running after the answer (issue 10, finding 6).
			go func() {
				for n := 0; ; n++ {
					_ = n * n
				}
			}()
			c.respond(id, []byte(`"ok"`))
		case "outside":
			// Answer, then, once the test says the invocation is over,
			// write outsideLines lines of 1 KiB and exit.
			c.respond(id, []byte(`"ok"`))
			for {
				if _, err := os.Stat(filepath.Join(os.Getenv("TMPDIR"), "go")); err == nil {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			line := strings.Repeat("x", 1023) + "\n"
			for i := 0; i < outsideLines; i++ {
				os.Stdout.WriteString(line)
			}
			return 0
		case "orphan":
			// sh exits at once; its background sleep is orphaned.
			_ = exec.Command("sh", "-c", "sleep 43.5 &").Run()
			c.respond(id, []byte(`"ok"`))
		default:
			fmt.Fprintln(os.Stderr, "unknown test function", name)
			return 1
		}
	}
}

// netReachable reports whether the function can open a connection to
// anything but its Runtime API: a public address, routed or not.
func netReachable() bool {
	cmd := exec.Command("sh", "-c", "cat /proc/net/route | wc -l")
	out, err := cmd.Output()
	if err != nil {
		return false
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n > 1 // a header line only: no routes
}
