package testutil

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"testing"
)

// FileStamps maps each file under dir to its size and modification time,
// so a test can tell whether anything was written there between two
// calls (a cache that must only be read, say).
func FileStamps(t testing.TB, dir string) map[string]string {
	t.Helper()
	m := make(map[string]string)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		m[path] = fmt.Sprint(info.Size(), " ", info.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
