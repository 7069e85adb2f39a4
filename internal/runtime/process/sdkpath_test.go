package process

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/baas"
	"github.com/mote-run/mote/internal/runtime"
	"github.com/mote-run/mote/internal/store"
)

// sdkFiles lists the files the SDKs must extract to, relative to the
// root, with the repository file each must equal.
func sdkFiles(t *testing.T) map[string]string {
	t.Helper()
	root := repoRoot(t)
	files := map[string]string{}
	py, _ := filepath.Glob(filepath.Join(root, "sdk", "python", "mote", "*.py"))
	for _, f := range py {
		files[filepath.Join(sdkPythonDir, "mote", filepath.Base(f))] = f
	}
	js, _ := filepath.Glob(filepath.Join(root, "sdk", "js", "*.mjs"))
	js = append(js, filepath.Join(root, "sdk", "js", "package.json"))
	for _, f := range js {
		files[filepath.Join(sdkJSDir, filepath.Base(f))] = f
	}
	if len(py) < 5 || len(js) < 5 {
		t.Fatalf("found %d Python and %d JS SDK files; is the repository layout as expected?", len(py), len(js))
	}
	return files
}

func checkExtracted(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for rel, src := range files {
		want, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		if string(got) != string(want) {
			t.Errorf("%s: content differs from %s", rel, src)
		}
		if fi, _ := os.Stat(filepath.Join(root, rel)); fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, want 0644", rel, fi.Mode().Perm())
		}
	}
	for _, dir := range []string{sdkJSDir, sdkPythonDir, filepath.Join(sdkPythonDir, "mote"), "node_modules"} {
		if fi, err := os.Stat(filepath.Join(root, dir)); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v, want a 0755 directory (err %v)", dir, fi.Mode(), err)
		}
	}
}

func TestExtractSDKs(t *testing.T) {
	files := sdkFiles(t)
	root := filepath.Join(t.TempDir(), "functions")
	s, err := ExtractSDKs(root)
	if err != nil {
		t.Fatal(err)
	}
	checkExtracted(t, root, files)

	// A restart: an unchanged file is kept (same inode), a changed one is
	// replaced, a file the SDK no longer has is removed, and files of
	// others in root are left alone.
	index := filepath.Join(s.JSDir(), "index.mjs")
	before, _ := os.Stat(index)
	kv := filepath.Join(s.PythonPath(), "mote", "kv.py")
	stale := filepath.Join(s.PythonPath(), "mote", "old.py")
	mine := filepath.Join(root, "fn", "handler.py")
	for name, content := range map[string]string{kv: "broken", stale: "x", mine: "mine"} {
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ExtractSDKs(root); err != nil {
		t.Fatal(err)
	}
	checkExtracted(t, root, files)
	if after, _ := os.Stat(index); !os.SameFile(before, after) {
		t.Errorf("unchanged %s was rewritten", index)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale %s: got err %v, want it removed", stale, err)
	}
	if b, _ := os.ReadFile(mine); string(b) != "mine" {
		t.Errorf("%s: got %q, want it untouched", mine, b)
	}
}

func TestSDKsEnvAndCommand(t *testing.T) {
	s := SDKs{Root: "/srv/fns"}
	envs := []struct {
		in   map[string]string
		want string
	}{
		{nil, "/srv/fns/.mote-python"},
		{map[string]string{"PYTHONPATH": "lib"}, "lib:/srv/fns/.mote-python"},
	}
	for _, tt := range envs {
		if got := s.Env(tt.in)["PYTHONPATH"]; got != tt.want {
			t.Errorf("Env(%v): got PYTHONPATH %q, want %q", tt.in, got, tt.want)
		}
	}

	bundled := t.TempDir()
	if err := os.MkdirAll(filepath.Join(bundled, "node_modules", "mote"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundled, "node_modules", "mote", "bootstrap.mjs"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	bare := t.TempDir()
	boot := "/srv/fns/node_modules/mote/bootstrap.mjs"
	cmds := []struct {
		argv []string
		dir  string
		want []string
	}{
		{[]string{"node", "node_modules/mote/bootstrap.mjs", "h.handler"}, bare, []string{"node", boot, "h.handler"}},
		{[]string{"/usr/bin/node", "--enable-source-maps", "./node_modules/mote/bootstrap.mjs"}, bare,
			[]string{"/usr/bin/node", "--enable-source-maps", boot}},
		{[]string{"node", "node_modules/mote/bootstrap.mjs", "h.handler"}, bundled,
			[]string{"node", "node_modules/mote/bootstrap.mjs", "h.handler"}},
		{[]string{"node", "server.mjs", "node_modules/mote/bootstrap.mjs"}, bare,
			[]string{"node", "server.mjs", "node_modules/mote/bootstrap.mjs"}},
		{[]string{"python3", "-m", "mote", "h.handler"}, bare, []string{"python3", "-m", "mote", "h.handler"}},
		{[]string{"node"}, bare, []string{"node"}},
	}
	for _, tt := range cmds {
		if got := s.Command(tt.argv, tt.dir); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Command(%q): got %q, want %q", tt.argv, got, tt.want)
		}
	}
}

// The SDK handlers of TestSDKsEndToEnd: the same calls in both languages,
// through the typed wrappers, with no SDK in the function's directory.
const (
	sdkPyHandler = `import mote

def handler(event, context):
    lang = event["lang"]
    version = mote.kv.put("data", lang, "hello " + lang, ttl=60)
    value, got_version = mote.kv.get_version("data", lang)
    keys, _ = mote.kv.list("data", prefix=lang)
    mote.cache.put("k", "cached")
    mote.eph.put("step", "1")
    out = {
        "value": value.decode(),
        "same_version": version == got_version,
        "keys": keys,
        "calls": mote.counter_add("data", lang + "-calls"),
        "cached": mote.cache.get("k").decode(),
        "miss": mote.cache.get("nothing"),
        "eph": mote.eph.get("step").decode(),
        "queue": mote.queue_push("data", lang + "-q", "a", "b"),
        "popped": mote.queue_pop("data", lang + "-q").decode(),
    }
    for name, fn in [("missing", lambda: mote.kv.get("data", "nothing")),
                     ("forbidden", lambda: mote.kv.put("secret", "k", "v"))]:
        try:
            fn()
        except mote.MoteError as e:
            out[name] = e.code
    return out
`
	sdkJSHandler = `import { cache, counterAdd, eph, kv, MoteError, queuePop, queuePush } from "mote";

export async function handler(event) {
  const lang = event.lang;
  const version = await kv.put("data", lang, "hello " + lang, { ttlMs: 60000 });
  const got = await kv.getVersion("data", lang);
  await cache.put("k", "cached");
  await eph.put("step", "1");
  const out = {
    value: got.value.toString(),
    same_version: version === got.version,
    keys: (await kv.list("data", lang)).keys,
    calls: await counterAdd("data", lang + "-calls"),
    cached: (await cache.get("k")).toString(),
    miss: await cache.get("nothing"),
    eph: (await eph.get("step")).toString(),
    queue: await queuePush("data", lang + "-q", "a", "b"),
    popped: (await queuePop("data", lang + "-q")).toString(),
  };
  for (const [name, fn] of [["missing", () => kv.get("data", "nothing")], ["forbidden", () => kv.put("secret", "k", "v")]]) {
    try {
      await fn();
    } catch (e) {
      if (!(e instanceof MoteError)) throw e;
      out[name] = e.code;
    }
  }
  return out;
}
`
)

// TestSDKsEndToEnd runs Python and Node functions whose directories hold
// only a handler against the real BaaS service: the extracted SDKs must
// be found (PYTHONPATH; node_modules above the function directory) and
// their wrappers must speak the ops as the service decodes them.
func TestSDKsEndToEnd(t *testing.T) {
	root := filepath.Join(fnDir, "sdk-e2e")
	s, err := ExtractSDKs(root)
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	db, err := store.Open(filepath.Join(dataDir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := baas.New(baas.Config{DB: db, Dir: dataDir, KV: store.KVConfig{SweepInterval: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		svc.Close()
		db.Close()
	})
	rt := newRuntime(t)

	langs := []struct {
		lang, interp, file, code string
		argv                     []string
	}{
		{"python", "python3", "handler.py", sdkPyHandler, []string{"python3", "-m", "mote", "handler.handler"}},
		{"node", "node", "handler.mjs", sdkJSHandler, []string{"node", "node_modules/mote/bootstrap.mjs", "handler.handler"}},
	}
	for _, l := range langs {
		t.Run(l.lang, func(t *testing.T) {
			needInterpreter(t, l.interp)
			dir := filepath.Join(root, "fn-"+l.lang)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, l.file), []byte(l.code), 0o644); err != nil {
				t.Fatal(err)
			}
			spec := runtime.Spec{
				Function: "sdk-" + l.lang, Version: "v1", Kind: runtime.KindProcess, Dir: dir,
				Handler: strings.Join(s.Command(l.argv, dir), " "),
				Env:     s.Env(map[string]string{"PYTHONDONTWRITEBYTECODE": "1"}),
			}
			in := startInstance(t, rt, spec)
			for call := 1; call <= 2; call++ {
				ev := event(`{"lang":"` + l.lang + `"}`)
				ev.Host = svc.Host(baas.Caller{
					Function: spec.Function, Root: ev.ID,
					Perms: baas.Permissions{Read: []string{"data"}, Write: []string{"data"}},
				})
				res, _, err := in.Invoke(context.Background(), ev)
				if err != nil {
					t.Fatalf("invoke %d: %v", call, err)
				}
				var got map[string]any
				if err := json.Unmarshal(res.Output, &got); err != nil {
					t.Fatalf("invoke %d: %v: %s", call, err, res.Output)
				}
				want := map[string]any{
					"value": "hello " + l.lang, "same_version": true, "keys": []any{l.lang},
					"calls": float64(call), "cached": "cached", "miss": nil, "eph": "1",
					// FIFO: the second call pops the "b" the first one left.
					"queue": float64(call + 1), "popped": []string{"a", "b"}[call-1],
					"missing": "not_found", "forbidden": "forbidden",
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("invoke %d:\n got %v\nwant %v", call, got, want)
				}
			}
		})
	}
}
