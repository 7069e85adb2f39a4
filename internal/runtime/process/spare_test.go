package process

import (
	"context"
	"testing"
)

// TestCloseWhileSpareStarts: the runtime (or the module) closing while a
// spare is being started in the background leaves nothing running and
// races nothing (run it with -race): Close waits for the spare's set-up,
// then its start ends as closed.
func TestCloseWhileSpareStarts(t *testing.T) {
	for _, what := range []string{"runtime", "module"} {
		t.Run(what, func(t *testing.T) {
			rt := newRuntimeSpare(t, Config{})
			mod, err := rt.Load(context.Background(), testSpec("echo"))
			if err != nil {
				t.Fatal(err)
			}
			in, err := mod.NewInstance(context.Background()) // starts the spare
			if err != nil {
				t.Fatal(err)
			}
			m := mod.(*module)
			switch what {
			case "runtime":
				rt.Close(context.Background())
			case "module":
				in.Close(context.Background())
				mod.Close(context.Background())
			}
			m.spare.wait()
			if s := m.spare.take(); s != nil && what == "module" {
				t.Error("a closed module kept a spare")
			}
			rt.mu.Lock()
			live := len(rt.live)
			rt.mu.Unlock()
			if what == "runtime" && live != 0 {
				t.Errorf("%d instances live after Close", live)
			}
		})
	}
}
