package scaffold

import (
	"bytes"
	"fmt"
	"strings"
)

// The Go SDK's copy is kept as one text archive, in the txtar format of
// golang.org/x/tools/txtar: each file is a line "-- NAME --" followed by
// its content. A text file rather than a directory of .go files, so that
// the go command does not take the copy for a package of this module.

type archiveFile struct {
	Name string
	Data []byte
}

func formatArchive(files []archiveFile) []byte {
	var b bytes.Buffer
	for _, f := range files {
		fmt.Fprintf(&b, "-- %s --\n", f.Name)
		b.Write(f.Data)
		if len(f.Data) > 0 && f.Data[len(f.Data)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

func parseArchive(data []byte) ([]archiveFile, error) {
	var files []archiveFile
	for len(data) > 0 {
		line, rest, _ := bytes.Cut(data, []byte("\n"))
		name, ok := markerName(string(line))
		if !ok {
			if len(files) == 0 {
				return nil, fmt.Errorf("scaffold: archive does not start with a file marker")
			}
			// Content line of the current file.
			f := &files[len(files)-1]
			f.Data = append(f.Data, line...)
			f.Data = append(f.Data, '\n')
		} else {
			files = append(files, archiveFile{Name: name})
		}
		data = rest
	}
	return files, nil
}

func markerName(line string) (string, bool) {
	if !strings.HasPrefix(line, "-- ") || !strings.HasSuffix(line, " --") || len(line) < 7 {
		return "", false
	}
	return strings.TrimSpace(line[3 : len(line)-3]), true
}
