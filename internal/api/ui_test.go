package api_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mote-run/mote/internal/api"
	"github.com/mote-run/mote/internal/system"
	"github.com/mote-run/mote/internal/testutil"
)

// The dashboard's files are served as the API is: to any caller on a
// server with a token (the page asks for one; every datum comes through
// the API with it), to loopback callers only on a tokenless one, and with
// a policy that loads nothing from elsewhere.
func TestUIServing(t *testing.T) {
	keyed := start(t, t.TempDir(), "s3cret-admin-token-0123456789")
	anon := &platform{t: t, srv: keyed.srv}
	for _, tc := range []struct {
		p          *platform
		path, want string
		status     int
	}{
		{anon, "/ui", "<title>Mote</title>", 200},
		{anon, "/ui/app.js", "drawTree", 200},
		{anon, "/ui/style.css", "--accent", 200},
		{anon, "/ui/nope.js", "", 404},
		{anon, "/v1/functions", "", 401},
		{keyed, "/ui/", "<title>Mote</title>", 200},
	} {
		r := tc.p.do("GET", tc.path, nil, nil)
		if r.status != tc.status || !strings.Contains(r.body, tc.want) {
			t.Errorf("GET %s: %d, want %d with %q", tc.path, r.status, tc.status, tc.want)
		}
		if r.status == 200 && !strings.Contains(r.header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("GET %s: CSP %q", tc.path, r.header.Get("Content-Security-Policy"))
		}
	}
	local := start(t, t.TempDir(), "")
	req, _ := http.NewRequest("GET", local.srv.URL+"/ui", nil)
	req.Host = "mote.example.com" // a page that rebound its name to 127.0.0.1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("tokenless server, Host mote.example.com: %d, want 403", resp.StatusCode)
	}
	if r := local.do("GET", "/ui", nil, nil); r.status != 200 {
		t.Errorf("tokenless server, loopback: %d, want 200", r.status)
	}
}

// chromium returns Debian's chromium, or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium is not installed (scripts/install-chromium installs Debian's): the dashboard's browser test cannot run")
	return ""
}

// browser starts a headless chromium for the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancel3)
	return ctx
}

// shot saves a screenshot of the page into $MOTE_UI_SCREENSHOTS (docs/
// when refreshing the docs' pictures), if set.
func shot(name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		dir := os.Getenv("MOTE_UI_SCREENSHOTS")
		if dir == "" {
			return nil
		}
		png, err := chromedp.FullScreenshot(100)(ctx, t)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "ui-"+name+".png"), png, 0o644)
	})
}

// into runs a and keeps its value in dst, as a step of chromedp.Do.
func into[T any](dst *T, a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		v, err := a(ctx, t)
		*dst = v
		return chromedp.Void{}, err
	}
}

// TestUIInBrowser drives the dashboard in headless Chromium as a user
// would: deploy two functions from files, invoke the parent, open its
// call tree (a map fan-out of three children, each with CPU and wall
// time), follow the link to another invocation's logs, and see the live
// rates, the usage chart and a dead letter redriven.
func TestUIInBrowser(t *testing.T) {
	chromium(t)
	modules(t)
	benchFlowOnce.Do(func() { benchFlow = testutil.BuildWasm(t, "../../examples/bench-flow", true) })
	dir := t.TempDir()
	flowWasm, guestWasm := filepath.Join(dir, "flow.wasm"), filepath.Join(dir, "guest.wasm")
	os.WriteFile(flowWasm, benchFlow, 0o644)
	os.WriteFile(guestWasm, guest, 0o644)
	p := start(t, t.TempDir(), "")
	base := p.srv.URL
	ctx := browser(t) // after start: the browser closes first, ending its log stream

	deploy := func(name, file, cfg string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(
			chromedp.SetValue(chromedp.CSS("#deploy-name"), name),
			chromedp.SetUploadFiles(chromedp.CSS("#deploy-file"), []string{file}),
			chromedp.SetValue(chromedp.CSS("#deploy-config"), cfg),
			chromedp.Click(chromedp.CSS("#deploy-submit")),
			chromedp.WaitVisible(chromedp.CSS(`#functions tr[data-function="`+name+`"]`)),
		)
	}
	var deployed string
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/ui"),
		chromedp.WaitVisible(chromedp.CSS("#deploy-form")),
		deploy("leaf", flowWasm, "{}"),
		deploy("flow", flowWasm, `{"permissions":{"invoke":["leaf"]}}`),
		deploy("g", guestWasm, `{"retry":{"attempts":1}}`),
		into(&deployed, chromedp.Text(chromedp.CSS("#deploy-result"))),
		shot("functions"),
	); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(deployed, "deployed g version 1") {
		t.Errorf("deploy result: %q", deployed)
	}

	// Invoke flow's map over three leaf children, then open its tree.
	var id string
	var nodes []map[string]string
	var edges int
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#tabs button[data-tab="invoke"]`)),
		chromedp.SetValue(chromedp.CSS("#invoke-fn"), "flow"),
		chromedp.SetValue(chromedp.CSS("#invoke-payload"), `{"op":"map","n":3,"fn":"leaf"}`),
		chromedp.Click(chromedp.CSS("#invoke-submit")),
		chromedp.WaitVisible(chromedp.CSS("#invoke-id")),
		into(&id, chromedp.Text(chromedp.CSS("#invoke-id"))),
		chromedp.Click(chromedp.CSS("#invoke-id")),
		chromedp.WaitVisible(chromedp.CSS("#trace-svg g.node")),
		into(&nodes, chromedp.Evaluate[[]map[string]string](`[...document.querySelectorAll("#trace-svg g.node")].map(g => ({
			function: g.dataset.function, depth: g.dataset.depth, cpu: g.dataset.cpuUs, wall: g.dataset.wallUs,
			text: g.querySelector("text").textContent, bar: g.querySelector("rect.bar").getAttribute("width")}))`)),
		into(&edges, chromedp.Evaluate[int](`document.querySelectorAll("#trace-svg path.edge").length`)),
		shot("trace"),
	); err != nil {
		t.Fatal(err)
	}
	if len(id) != 26 && len(id) < 16 {
		t.Errorf("invocation id %q", id)
	}
	if len(nodes) != 4 || edges != 3 {
		t.Fatalf("call tree drew %d nodes and %d edges, want 4 and 3: %v", len(nodes), edges, nodes)
	}
	for i, n := range nodes {
		wantFn, wantDepth := "leaf", "1"
		if i == 0 {
			wantFn, wantDepth = "flow", "0"
		}
		wall, _ := strconv.Atoi(n["wall"])
		if n["function"] != wantFn || n["depth"] != wantDepth || wall <= 0 || n["cpu"] == "" ||
			!strings.Contains(n["text"], "cpu ") || !strings.Contains(n["text"], "wall ") || n["bar"] == "" {
			t.Errorf("node %d: %v, want %s at depth %s with its CPU and wall time", i, n, wantFn, wantDepth)
		}
	}

	// Another invocation that logs; its logs link opens the tail.
	var logLines string
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#invoke-fn"), "g"),
		chromedp.SetValue(chromedp.CSS("#invoke-payload"), "log:hello-from-the-dashboard"),
		chromedp.Click(chromedp.CSS("#invoke-submit")),
		// The answer replaces the links of the one before.
		into(new(bool), chromedp.Poll[bool](`document.querySelector("#invoke-id").textContent !== "`+id+`"`)),
		chromedp.Click(chromedp.CSS("#invoke-logs")),
		chromedp.WaitVisible(chromedp.CSS(`#logs tbody tr.log`)),
		into(&logLines, chromedp.Text(chromedp.CSS("#logs tbody"))),
		shot("logs"),
	); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logLines, "hello-from-the-dashboard") {
		t.Errorf("log tail: %q", logLines)
	}

	// Live rates (two samples 2 s apart), usage against wall-clock billing.
	var liveRows, usageFns []string
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#tabs button[data-tab="live"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#live-table tr[data-function="leaf"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#live-rate polyline`)),
		into(&liveRows, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#live-table tbody tr")].map(r => r.dataset.function + " " + r.lastChild.textContent)`)),
		shot("live"),
		chromedp.Click(chromedp.CSS(`#tabs button[data-tab="usage"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#usage-svg rect.billed[data-function="flow"]`)),
		into(&usageFns, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#usage-svg rect")].map(r => r.getAttribute("class") + " " + r.dataset.function)`)),
		shot("usage"),
	); err != nil {
		t.Fatal(err)
	}
	if !containsAll(strings.Join(liveRows, ","), "flow 1", "leaf 3", "g 1") {
		t.Errorf("live table: %v, want flow 1, leaf 3 (nested), g 1", liveRows)
	}
	if !containsAll(strings.Join(usageFns, ","), "billed flow", "wallclock flow", "billed leaf", "wallclock g") {
		t.Errorf("usage chart bars: %v", usageFns)
	}

	// A failing async invocation becomes a dead letter; redrive it.
	req, _ := http.NewRequest("POST", base+"/fn/g", strings.NewReader("error:boom"))
	req.Header.Set(api.HeaderAsync, "true")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	dead := resp.Header.Get(api.HeaderInvocationID)
	waitDeadLetter(t, p.sys, dead)
	var status string
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#tabs button[data-tab="dlq"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#dlq tr[data-id="`+dead+`"] button.redrive`)),
		shot("dlq"),
		chromedp.Click(chromedp.CSS(`#dlq tr[data-id="`+dead+`"] button.redrive`)),
		chromedp.WaitVisible(chromedp.CSS(`#status:not(:empty)`)),
		into(new(bool), chromedp.Poll[bool](`document.querySelector("#status").textContent.startsWith("redriven")`)),
		into(&status, chromedp.Text(chromedp.CSS("#status"))),
	); err != nil {
		t.Fatal(err)
	}
	if status != "redriven "+dead {
		t.Errorf("status after redrive: %q", status)
	}
}

// waitDeadLetter waits until id is a dead letter, polling the flow engine
// (the queue's worker settles it on its own goroutine).
func waitDeadLetter(t *testing.T, sys *system.System, id string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		dl, err := sys.Flow().DeadLetters(0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dl {
			if d.ID == id {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never became a dead letter", id)
}

// A server with a token shows the sign-in form, and with the token the
// page reads the API.
func TestUIInBrowserWithToken(t *testing.T) {
	chromium(t)
	const tok = "s3cret-admin-token-0123456789"
	p := start(t, t.TempDir(), tok)
	ctx := browser(t)
	modules(t)
	p.mustDeploy("hello", reactorHello, "")
	var rows int
	if err := chromedp.Do(ctx,
		chromedp.Navigate(p.srv.URL+"/ui"),
		chromedp.WaitVisible(chromedp.CSS("#token-input")),
		shot("login"),
		chromedp.SendKeys(chromedp.CSS("#token-input"), tok),
		chromedp.Click(chromedp.CSS("#token-save")),
		chromedp.WaitVisible(chromedp.CSS(`#functions tr[data-function="hello"]`)),
		into(&rows, chromedp.Evaluate[int](`document.querySelectorAll("#functions tbody tr").length`)),
	); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Errorf("functions listed with the token: %d, want 1", rows)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
