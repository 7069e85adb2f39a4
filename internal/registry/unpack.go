package registry

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/gzip"

	"github.com/mote-run/mote/internal/errs"
)

// Limits on a process function's directory archive. Lambda allows 250 MB
// unpacked; these leave room for a runtime bundled with the code, and stop
// an archive from filling the disk or the name space. Variables so that a
// test can reach them without writing a gigabyte.
var (
	maxUnpackedBytes int64 = 1 << 30   // all regular files together
	maxFileBytes     int64 = 512 << 20 // one regular file
)

const (
	maxUnpackedFiles = 20000   // entries of any type
	maxPathLen       = 1024    // bytes in an entry's name or a link's target
	maxPathDepth     = 64      // components in an entry's name
	maxNameLen       = 255     // bytes in one component (NAME_MAX)
	maxTrailing      = 1 << 20 // bytes after the end of the tar (padding)
)

// completeMark is the file Unpack writes last into a finished directory.
const completeMark = ".mote-complete"

// configName is a function directory's config file, which mote deploy
// reads and packs along with the code.
const configName = "mote.json"

// Unpack extracts the tar.gz artifact sum into root/sum (once; later calls
// return the existing directory) and returns that directory, read-only.
// An archive that would write outside the directory, holds a link that
// leads outside it (alone or through other links), a hard link to
// anything but one of its own regular files, a device or fifo, or is too
// large, is refused with errs.BadRequest and leaves nothing on disk.
func (r *Registry) Unpack(sum, root string) (string, error) {
	dst := filepath.Join(root, sum)
	if _, err := os.Stat(filepath.Join(dst, completeMark)); err == nil {
		return dst, nil
	}
	f, err := os.Open(r.ArtifactPath(sum))
	if err != nil {
		return "", fmt.Errorf("registry: %w", err)
	}
	defer f.Close()
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", fmt.Errorf("registry: %w", err)
	}
	tmp, err := os.MkdirTemp(root, ".unpack-*")
	if err != nil {
		return "", fmt.Errorf("registry: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := unpackInto(f, tmp); err != nil {
		return "", err
	}
	os.RemoveAll(dst)
	if err := os.Rename(tmp, dst); err != nil {
		return "", fmt.Errorf("registry: %w", err)
	}
	return dst, nil
}

// unpackInto extracts the tar.gz archive read from src into the empty
// directory dir, and marks it complete.
//
// Every write goes through an os.Root at dir, which never follows a link
// out of it; and the archive is checked against a model of the tree it
// builds (tree), so that no entry is written below a link or a file, no
// name is used twice, and no link, followed through the links around it,
// leads outside dir. The model catches what os.Root cannot see: a link
// that is harmless while unpacking but leads out when the function, or
// Mote, follows it later.
func unpackInto(src io.Reader, dir string) error {
	zr, err := gzip.NewReader(src)
	if err != nil {
		return bad("not a tar.gz archive: %v", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	defer root.Close()
	t := newTree()
	tr := tar.NewReader(zr)
	var total int64
	for files := 0; ; files++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return bad("%v", err)
		}
		if files >= maxUnpackedFiles {
			return bad("more than %d entries", maxUnpackedFiles)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue // metadata, such as the commit git archive records
		}
		name, err := entryName(h.Name)
		if err != nil {
			return err
		}
		if name == "" {
			continue // the archive's own root, "./"
		}
		if err := t.add(name, h); err != nil {
			return err
		}
		if err := extract(root, tr, name, h, &total); err != nil {
			return err
		}
	}
	// Read the compressed stream to its end, which checks its checksum;
	// past tar's end there is only padding.
	if n, err := io.Copy(io.Discard, io.LimitReader(zr, maxTrailing+1)); err != nil {
		return bad("after the last entry: %v", err)
	} else if n > maxTrailing {
		return bad("more than %d bytes after the last entry", maxTrailing)
	}
	if err := t.checkLinks(); err != nil {
		return err
	}
	// Directories 0755 whatever the umask: the function's user reads them.
	for _, name := range append(t.dirs, ".") {
		if err := root.Chmod(name, 0o755); err != nil {
			return fmt.Errorf("registry: %w", err)
		}
	}
	if err := root.WriteFile(completeMark, nil, 0o444); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	return nil
}

// extract writes the entry h, named name and checked by tree.add, through
// root.
func extract(root *os.Root, tr io.Reader, name string, h *tar.Header, total *int64) error {
	if dir := path.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("registry: %w", err)
		}
	}
	switch h.Typeflag {
	case tar.TypeDir:
		if err := root.Mkdir(name, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("registry: %w", err)
		}
	case tar.TypeReg:
		if h.Size > maxFileBytes {
			return bad("file %q has %d bytes, more than %d", h.Name, h.Size, maxFileBytes)
		}
		if *total += h.Size; *total > maxUnpackedBytes {
			return bad("unpacks to more than %d bytes", maxUnpackedBytes)
		}
		// Read-only, and readable by the function's user: a function may
		// not change its own code. Set-id bits are dropped. The config
		// the CLI packs along may hold env values, which the function
		// gets as its environment: it is root's alone.
		mode := fs.FileMode(0o444)
		if h.Mode&0o111 != 0 {
			mode |= 0o111
		}
		if name == configName {
			mode = 0o600
		}
		out, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("registry: %w", err)
		}
		_, err = io.Copy(out, archiveReader{tr, h.Name})
		if err == nil {
			err = out.Chmod(mode)
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil && errs.CodeOf(err) != errs.BadRequest {
			return fmt.Errorf("registry: %w", err)
		}
		return err
	case tar.TypeSymlink:
		if err := root.Symlink(h.Linkname, name); err != nil {
			return fmt.Errorf("registry: %w", err)
		}
	case tar.TypeLink:
		target, _ := entryName(h.Linkname) // checked by tree.add
		if err := root.Link(target, name); err != nil {
			return fmt.Errorf("registry: %w", err)
		}
	}
	return nil
}

// archiveReader reads a file's bytes from the archive, and tells a fault
// in the archive (cut short, corrupt) from one in writing it out.
type archiveReader struct {
	r    io.Reader
	name string
}

func (a archiveReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	switch {
	case err == nil || err == io.EOF:
	case errors.Is(err, io.ErrUnexpectedEOF):
		err = bad("file %q is cut short", a.name)
	default:
		err = bad("file %q: %v", a.name, err)
	}
	return n, err
}

func bad(format string, args ...any) error {
	return errs.E(errs.BadRequest, "function archive: "+format, args...)
}

// entryName returns an archive name cleaned and relative to the archive's
// root ("" for the root itself), or an error if it is absolute, has a ".."
// component, or is too long or too deep.
func entryName(name string) (string, error) {
	if len(name) > maxPathLen {
		return "", bad("name %.40q... is longer than %d bytes", name, maxPathLen)
	}
	if strings.HasPrefix(name, "/") || strings.ContainsRune(name, 0) {
		return "", bad("entry %q escapes the function directory", name)
	}
	parts := strings.Split(name, "/")
	for _, p := range parts {
		if p == ".." {
			return "", bad("entry %q escapes the function directory", name)
		}
		if len(p) > maxNameLen {
			return "", bad("entry %q has a component longer than %d bytes", name, maxNameLen)
		}
	}
	if len(parts) > maxPathDepth {
		return "", bad("entry %q is deeper than %d directories", name, maxPathDepth)
	}
	if clean := path.Clean(name); clean != "." {
		return clean, nil
	}
	return "", nil
}

// tree is the model of what an archive has built so far: a node per
// entry, and per directory made implicitly for an entry below it.
type tree struct {
	root node
	dirs []string // every directory but the root, to set their modes
}

type node struct {
	name   string // from the archive's root, for messages
	typ    byte   // tar.TypeDir, TypeReg or TypeSymlink (a hard link is TypeReg)
	link   string // a symlink's target
	parent *node
	kids   map[string]*node

	// What a symlink leads to, once checkLinks resolved it.
	resolving, resolved bool
	to                  *node // the deepest existing node on the way
	missing             int   // components below to that do not exist
}

func newTree() *tree { return &tree{root: node{typ: tar.TypeDir}} }

// add checks the entry h named name against what the archive built before
// it, and records it.
func (t *tree) add(name string, h *tar.Header) error {
	if name == completeMark {
		return bad("entry %q has a name Mote reserves", h.Name)
	}
	typ := h.Typeflag
	switch typ {
	case tar.TypeDir, tar.TypeReg:
	case tar.TypeSymlink:
		if err := checkTarget(name, h.Linkname); err != nil {
			return err
		}
	case tar.TypeLink:
		target, err := entryName(h.Linkname)
		if err != nil {
			return err
		}
		if n := t.lookup(target); n == nil || n.typ != tar.TypeReg {
			return bad("hard link %q must name a regular file earlier in the archive, not %q", h.Name, h.Linkname)
		}
		typ = tar.TypeReg
	default:
		return bad("entry %q has unsupported type %q (devices, fifos and the like are not part of a function)", h.Name, h.Typeflag)
	}
	// Every directory above name must be one, never a link or a file: the
	// entry is then written where its name says, and a link's directory
	// in the model is the one it really is in.
	dir := &t.root
	parts := strings.Split(name, "/")
	for i, p := range parts[:len(parts)-1] {
		n := dir.kids[p]
		switch {
		case n == nil:
			n = dir.mkdir(strings.Join(parts[:i+1], "/"), p)
			t.dirs = append(t.dirs, n.name)
		case n.typ == tar.TypeSymlink:
			return bad("entry %q is below the link %q", h.Name, n.name)
		case n.typ != tar.TypeDir:
			return bad("entry %q is below the file %q", h.Name, n.name)
		}
		dir = n
	}
	last := parts[len(parts)-1]
	if n := dir.kids[last]; n != nil {
		if n.typ == tar.TypeDir && typ == tar.TypeDir {
			return nil
		}
		return bad("entry %q appears twice", h.Name)
	}
	n := dir.mkdir(name, last)
	n.typ, n.link = typ, h.Linkname
	if typ == tar.TypeDir {
		t.dirs = append(t.dirs, name)
	}
	return nil
}

// mkdir adds the child base, named name, to n as a directory.
func (n *node) mkdir(name, base string) *node {
	if n.kids == nil {
		n.kids = map[string]*node{}
	}
	k := &node{name: name, typ: tar.TypeDir, parent: n}
	n.kids[base] = k
	return k
}

// lookup returns the node named name (cleaned), without following links,
// or nil.
func (t *tree) lookup(name string) *node {
	n := &t.root
	for _, p := range strings.Split(name, "/") {
		if n = n.kids[p]; n == nil {
			return nil
		}
	}
	return n
}

// checkTarget refuses a link target that is absolute, too long, or leaves
// the archive's root when read, as text, from the link's own directory.
// Chains through other links are checked once the tree is complete.
func checkTarget(name, target string) error {
	switch {
	case target == "" || strings.ContainsRune(target, 0):
		return bad("link %q has no valid target", name)
	case len(target) > maxPathLen:
		return bad("link %q has a target longer than %d bytes", name, maxPathLen)
	case path.IsAbs(target):
		return bad("link %q points to the absolute path %q; links must be relative and stay inside the function directory", name, target)
	}
	if p := path.Join(path.Dir(name), target); p == ".." || strings.HasPrefix(p, "../") {
		return bad("link %q -> %q points outside the function directory", name, target)
	}
	return nil
}

// checkLinks resolves every link as the kernel would, following the links
// it passes through, and refuses one that leads outside the root at any
// step, or a loop. Each link is resolved once (its directory is a real
// one, as no entry lies below a link, so what it leads to does not depend
// on how it was reached), which keeps the work linear in the targets'
// lengths.
func (t *tree) checkLinks() error {
	var walk func(n *node) error
	walk = func(n *node) error {
		if n.typ == tar.TypeSymlink {
			return n.resolve()
		}
		for _, k := range n.kids {
			if err := walk(k); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(&t.root)
}

// resolve sets what the link n leads to.
func (n *node) resolve() error {
	if n.resolved {
		return nil
	}
	if n.resolving {
		return bad("links through %q form a loop", n.name)
	}
	n.resolving = true
	at, missing := n.parent, 0
	for _, c := range strings.Split(n.link, "/") {
		switch {
		case c == "" || c == ".":
		case c == ".." && missing > 0:
			missing--
		case c == "..":
			if at.parent == nil {
				return bad("link %q -> %q points outside the function directory", n.name, n.link)
			}
			at = at.parent
		case missing > 0 || at.kids[c] == nil:
			missing++
		case at.kids[c].typ == tar.TypeSymlink:
			k := at.kids[c]
			if err := k.resolve(); err != nil {
				return err
			}
			at, missing = k.to, k.missing
		default:
			at = at.kids[c]
		}
	}
	n.to, n.missing, n.resolved = at, missing, true
	return nil
}

// Pack writes dir as a tar.gz archive to w, the form Unpack reads. Files
// and directories only (symlinks inside dir are kept as links).
//
// It compresses at gzip's fastest level: the archive is made on every
// deploy and read once, and deploy → first answer is a latency users
// wait on. On a 12 MB aws-lambda-go binary the default level took 358 ms
// and made 6.5 MB; this one takes ~50 ms and makes 7.0 MB (see
// RATIONALE.md, "Deploy → first answer").
func Pack(w io.Writer, dir string) error { return PackFiltered(w, dir, nil) }

// PackFiltered is Pack leaving out the paths for which skip (given the
// slash-separated path relative to dir) returns true; a skipped
// directory is left out whole.
func PackFiltered(w io.Writer, dir string, skip func(rel string, isDir bool) bool) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		if skip != nil && skip(filepath.ToSlash(rel), d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		} else if !info.Mode().IsRegular() && !info.IsDir() {
			return nil // sockets, devices: not part of a function
		}
		h, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		h.ModTime = h.ModTime.Truncate(1e9)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("packing %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}
