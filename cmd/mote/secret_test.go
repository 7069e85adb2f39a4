package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mote-run/mote/internal/secrets"
	"github.com/mote-run/mote/internal/store"
)

// TestCLISecrets: set from stdin (the real binary, a pipe) and from a
// file, list without values, grant at deploy, rotate without redeploy,
// and rm refused while granted. The value never appears in any output
// but the function's own answer.
func TestCLISecrets(t *testing.T) {
	guest := writeModule(t, "../../internal/system/testdata/flowguest", true)
	s := startServer(t)
	const v1, v2 = "first-s3cret-value", "second-s3cret-value"
	cmd := exec.Command(moteBinary(t), "secret", "set", "API_KEY", "--server", s.url)
	cmd.Stdin = strings.NewReader(v1 + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "set secret API_KEY version 1") {
		t.Fatalf("secret set from stdin: %v %q", err, out)
	}
	steps := []struct {
		args     []string
		wantCode int
		wantOut  string
	}{
		{[]string{"secret", "set", "API_KEY", v1}, 2, ""}, // never from argv
		{[]string{"deploy", "g", guest, "--secrets", "API_KEY"}, 0, "version 1"},
		{[]string{"invoke", "g", "-d", "env:API_KEY"}, 0, v1}, // the trailing newline was dropped
		{[]string{"info", "g"}, 0, "secrets: API_KEY (values never shown)"},
		{[]string{"secret", "set", "API_KEY", "--from-file", writeFile(t, v2)}, 0, "new instances of g@1 start with the new value"},
		{[]string{"invoke", "g", "-d", "env:API_KEY"}, 0, v2},
		{[]string{"secret", "ls"}, 0, "API_KEY  2"},
		{[]string{"secret", "rm", "API_KEY"}, 1, ""},
		{[]string{"deploy", "g", guest}, 0, "version 2"}, // a redeploy keeps the grant
		{[]string{"secret", "rm", "API_KEY"}, 1, ""},
		{[]string{"deploy", "g", guest, "--secrets", ""}, 0, "version 3"},
		{[]string{"secret", "rm", "API_KEY"}, 0, "removed secret API_KEY"},
		{[]string{"secret", "rm", "API_KEY"}, 1, ""},
	}
	for _, st := range steps {
		code, out, errOut := s.mote(t, st.args...)
		if code != st.wantCode || !strings.Contains(out, st.wantOut) {
			t.Fatalf("mote %s: got code %d out %q err %q; want code %d and %q", strings.Join(st.args, " "), code, out, errOut, st.wantCode, st.wantOut)
		}
		if st.args[0] != "invoke" && (strings.Contains(out+errOut, v1) || strings.Contains(out+errOut, v2)) {
			t.Errorf("mote %s printed a secret's value: %q %q", strings.Join(st.args, " "), out, errOut)
		}
	}
	s.mote(t, "secret", "set", "OTHER", "--from-file", writeFile(t, "x"))
	code, lsOut, _ := s.mote(t, "secret", "ls", "--json")
	var list []struct {
		Name      string   `json:"name"`
		Version   int      `json:"version"`
		Functions []string `json:"functions"`
	}
	if err := json.Unmarshal([]byte(lsOut), &list); code != 0 || err != nil || len(list) != 1 || list[0].Name != "OTHER" || list[0].Version != 1 {
		t.Errorf("secret ls --json: %d %q (%v)", code, lsOut, err)
	}
}

// TestServeRefusesWrongSecretsKey: mote serve started with a key file
// that is not the one the data directory's secrets were sealed with
// exits with an error naming the file, and the right file afterwards
// finds every secret.
func TestServeRefusesWrongSecretsKey(t *testing.T) {
	data := t.TempDir()
	db, err := store.Open(filepath.Join(data, "db"))
	if err != nil {
		t.Fatal(err)
	}
	sec, err := secrets.Open(secrets.Config{DB: db, KeyFile: filepath.Join(data, "secrets.key")})
	if err == nil {
		_, err = sec.Set("KEPT", []byte("v"))
	}
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other.key")
	os.WriteFile(other, []byte(strings.Repeat("ab", 32)+"\n"), 0o600)
	out, err := exec.Command(moteBinary(t), "serve", "--addr", "127.0.0.1:0", "--data", data, "--secrets-key-file", other).CombinedOutput()
	if err == nil || !strings.Contains(string(out), other) || !strings.Contains(string(out), "is not the key") {
		t.Fatalf("serve with another key: %v %q; want it to exit naming %s", err, out, other)
	}
	s := startServerIn(t, data)
	if code, out, errOut := s.mote(t, "secret", "ls"); code != 0 || !strings.Contains(out, "KEPT") {
		t.Errorf("with the right key: %d %q %q", code, out, errOut)
	}
}
