package scaffold

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite gosdk.txtar from sdk/go")

// goSDKSources reads what a function needs of sdk/go: go.mod and the
// non-test Go files.
func goSDKSources(t *testing.T) []archiveFile {
	t.Helper()
	dir := filepath.Join("..", "..", "sdk", "go")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []archiveFile
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || !(n == "go.mod" || strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go")) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, archiveFile{Name: n, Data: b})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return files
}

// TestGoSDKCopyIsCurrent keeps the copy of the Go SDK that the binary
// carries equal to sdk/go.
func TestGoSDKCopyIsCurrent(t *testing.T) {
	want := formatArchive(goSDKSources(t))
	if *update {
		if err := os.WriteFile("gosdk.txtar", want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(goSDK, want) {
		t.Fatal("gosdk.txtar differs from sdk/go: run go test ./internal/scaffold -run GoSDK -update")
	}
	files, err := parseArchive(goSDK)
	if err != nil {
		t.Fatal(err)
	}
	if got := formatArchive(files); !bytes.Equal(got, goSDK) {
		t.Fatal("the archive does not read back as written")
	}
}
