package cluster

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/runtime"
)

// oneNode starts an embedded nats-server as a one-node cluster and opens
// a Node of Mote version on it.
func oneNode(t testing.TB, version string) (*Node, string) {
	t.Helper()
	dir := t.TempDir()
	srv, err := StartServer(ServerConfig{Name: "t", Node: "a", Listen: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := Open(ctx, Config{Name: "t", Node: "a", URLs: []string{srv.ClientURL()}, Replicas: 1, Version: version})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n, srv.ClientURL()
}

// installed is a Local that records what the cluster installs.
type installed struct {
	mu       sync.Mutex
	versions map[string]int
}

func (l *installed) ApplyVersion(ctx context.Context, v *registry.Version, artifact func() ([]byte, error)) error {
	if _, err := artifact(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.versions[v.Function] = v.Number
	return nil
}

func (l *installed) ApplyRemove(ctx context.Context, name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.versions, name)
	return nil
}

func (l *installed) CurrentVersion(fn string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.versions[fn]
}

func (l *installed) RunVersion(ctx context.Context, fn string, n int, ev *runtime.Event) (runtime.Result, runtime.Usage, bool, error) {
	return runtime.Result{Output: ev.Payload}, runtime.Usage{}, false, nil
}

func (l *installed) RunAsync(ctx context.Context, fn string, payload []byte) (string, error) {
	return "", nil
}

func (l *installed) Load() map[string]FnLoad { return nil }

// TestReserveNumbersVersionsOnce: deploys racing for the same function
// get distinct, consecutive version numbers (Create on v.NAME.N is the
// lock), and Release gives a number back.
func TestReserveNumbersVersionsOnce(t *testing.T) {
	n, _ := oneNode(t, "test")
	ctx := context.Background()
	const racers = 8
	got := make([]int, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := n.Reserve(ctx, "f", "sum", 3, registry.Config{}, []byte("abc"))
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = v.Number
		}()
	}
	wg.Wait()
	seen := map[int]bool{}
	for _, g := range got {
		if g < 1 || g > racers || seen[g] {
			t.Fatalf("version numbers %v: want each of 1..%d once", got, racers)
		}
		seen[g] = true
	}
	v, err := n.Reserve(ctx, "f", "sum", 3, registry.Config{}, []byte("abc"))
	if err != nil || v.Number != racers+1 {
		t.Fatalf("next reservation: %v, %v; want %d", v, err, racers+1)
	}
	n.Release(ctx, v)
	if v2, err := n.Reserve(ctx, "f", "sum", 3, registry.Config{}, []byte("abc")); err != nil || v2.Number != v.Number {
		t.Fatalf("after Release: %v, %v; want %d again", v2, err, v.Number)
	}
}

// TestPublishInstallsAndRemoves: a published version is installed by the
// node's registry watch (artifact fetched from the object store), and a
// removal removes it.
func TestPublishInstallsAndRemoves(t *testing.T) {
	n, _ := oneNode(t, "test")
	l := &installed{versions: map[string]int{}}
	if err := n.Start(l, "127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v, err := n.Reserve(ctx, "f", "sum-of-abc", 3, registry.Config{}, []byte("abc"))
	if err != nil {
		t.Fatal(err)
	}
	wait, err := n.Publish(ctx, "f", v.Number)
	if err != nil {
		t.Fatal(err)
	}
	if missing := wait(); len(missing) != 0 {
		t.Fatalf("missing %v on a one-node cluster", missing)
	}
	waitFor(t, func() bool { return l.CurrentVersion("f") == v.Number })
	wait, err = n.PublishRemove(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	wait()
	waitFor(t, func() bool { return l.CurrentVersion("f") == 0 })
	if _, err := n.reg.Get(ctx, versionKey("f", v.Number)); err == nil {
		t.Errorf("version record of a removed function is still there")
	}
}

// waitFor polls cond, set by the node's watch goroutine, for up to 10s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("condition not met in 10s")
		}
	}
}

// TestOtherVersionRefused: a node of another Mote version cannot join.
func TestOtherVersionRefused(t *testing.T) {
	n, url := oneNode(t, "1.0.0")
	if err := n.Start(&installed{versions: map[string]int{}}, "127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := Open(ctx, Config{Name: "t", Node: "b", URLs: []string{url}, Replicas: 1, Version: "2.0.0"})
	if err == nil || !strings.Contains(err.Error(), "1.0.0") || !strings.Contains(err.Error(), "2.0.0") {
		t.Fatalf("joining with another version: %v; want an error naming both versions", err)
	}
}

func TestNodeNameIsKept(t *testing.T) {
	dir := t.TempDir()
	a, err := NodeName(dir, "")
	if err != nil || !strings.HasPrefix(a, "n-") {
		t.Fatalf("first NodeName: %q, %v", a, err)
	}
	if b, err := NodeName(dir, ""); err != nil || b != a {
		t.Fatalf("second NodeName: %q, %v; want %q", b, err, a)
	}
	if _, err := NodeName(dir, "other"); err == nil {
		t.Fatal("renaming a node's data directory: no error")
	}
}

func TestServerConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  ServerConfig
		want string
	}{
		{ServerConfig{Name: "bad name", Listen: "127.0.0.1:1", DataDir: "d"}, "invalid --cluster-name"},
		{ServerConfig{Name: "ok", DataDir: "d"}, "--cluster-listen is required"},
		{ServerConfig{Name: "ok", Listen: "nope", DataDir: "d"}, "--cluster-listen"},
		{ServerConfig{Name: "ok", Listen: "127.0.0.1:1", Peers: []string{"x:99999"}, DataDir: "d"}, "--peers entry"},
		{ServerConfig{Name: "ok", Listen: "127.0.0.1:1", DataDir: "d"}, ""},
	} {
		err := c.cfg.Validate()
		if got := fmt.Sprint(err); (c.want == "") != (err == nil) || (err != nil && !strings.Contains(got, c.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", c.cfg, err, c.want)
		}
	}
}

// TestSyncInstallsWhatTheRegistryHas: a node asked for a function its
// registry watch has not installed yet installs the cluster's current
// version at once (Sync), and a function the registry lacks is not
// found. Node b never starts its watch, so only Sync can install.
func TestSyncInstallsWhatTheRegistryHas(t *testing.T) {
	a, url := oneNode(t, "test")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := Open(ctx, Config{Name: "t", Node: "b", URLs: []string{url}, Replicas: 1, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	lb := &installed{versions: map[string]int{}}
	b.local = lb
	v, err := a.Reserve(ctx, "f", "sum-of-abc", 3, registry.Config{}, []byte("abc"))
	if err != nil {
		t.Fatal(err)
	}
	wait, err := a.Publish(ctx, "f", v.Number)
	if err != nil {
		t.Fatal(err)
	}
	wait()
	if got := lb.CurrentVersion("f"); got != 0 {
		t.Fatalf("b runs version %d before Sync; the test needs it not to", got)
	}
	if ok, err := b.Sync(ctx, "f"); !ok || err != nil {
		t.Fatalf("Sync(f): %v, %v; want true, nil", ok, err)
	}
	if got := lb.CurrentVersion("f"); got != v.Number {
		t.Fatalf("after Sync b runs version %d, want %d", got, v.Number)
	}
	if ok, err := b.Sync(ctx, "nope"); ok || err != nil {
		t.Fatalf("Sync(nope): %v, %v; want false, nil", ok, err)
	}
}
