package main

import (
	"fmt"
	"io"
	rdebug "runtime/debug"
)

// version is set by the build (-ldflags "-X main.version=..."); without
// it, the module version `go install` recorded, or "dev".
var version = "dev"

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stdout, versionLine())
	return 0
}

// versionLine is "mote VERSION (commit REV[, modified], GOVERSION)",
// from what the go command recorded in the binary.
func versionLine() string {
	v, commit, modified, gover := version, "unknown", false, ""
	if info, ok := rdebug.ReadBuildInfo(); ok {
		gover = info.GoVersion
		if v == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
				if len(commit) > 12 {
					commit = commit[:12]
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if modified {
		commit += ", modified"
	}
	return fmt.Sprintf("mote %s (commit %s, %s)", v, commit, gover)
}
