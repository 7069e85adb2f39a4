package registry

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/mote-run/mote/internal/errs"
)

// Limits on a process function's directory archive.
const (
	maxUnpackedBytes = 1 << 30
	maxUnpackedFiles = 20000
)

// Unpack extracts the tar.gz artifact sum into root/sum (once; later calls
// return the existing directory) and returns that directory. Entries that
// would escape the directory, links that point outside it, and device files
// are refused with errs.BadRequest.
func (r *Registry) Unpack(sum, root string) (string, error) {
	dst := filepath.Join(root, sum)
	if _, err := os.Stat(filepath.Join(dst, ".mote-complete")); err == nil {
		return dst, nil
	}
	f, err := os.Open(r.ArtifactPath(sum))
	if err != nil {
		return "", fmt.Errorf("registry: %w", err)
	}
	defer f.Close()
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("registry: %w", err)
	}
	tmp, err := os.MkdirTemp(root, ".unpack-*")
	if err != nil {
		return "", fmt.Errorf("registry: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := untar(f, tmp); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, ".mote-complete"), nil, 0o444); err != nil {
		return "", fmt.Errorf("registry: %w", err)
	}
	// Everything read-only, and readable by the unprivileged user that
	// sandboxed functions run as: a function may not change its own code.
	filepath.WalkDir(tmp, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
		case d.IsDir():
			os.Chmod(p, 0o755)
		case d.Type().IsRegular():
			info, _ := d.Info()
			mode := fs.FileMode(0o444)
			if info.Mode().Perm()&0o111 != 0 {
				mode |= 0o111
			}
			os.Chmod(p, mode)
		}
		return nil
	})
	os.RemoveAll(dst)
	if err := os.Rename(tmp, dst); err != nil {
		return "", fmt.Errorf("registry: %w", err)
	}
	return dst, nil
}

func untar(src io.Reader, dir string) error {
	bad := func(f string, a ...any) error { return errs.E(errs.BadRequest, "function archive: "+f, a...) }
	zr, err := gzip.NewReader(src)
	if err != nil {
		return bad("not a tar.gz archive: %v", err)
	}
	tr := tar.NewReader(zr)
	var total int64
	for files := 0; ; files++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return bad("%v", err)
		}
		if files >= maxUnpackedFiles {
			return bad("more than %d entries", maxUnpackedFiles)
		}
		name := filepath.Clean(h.Name)
		if name == "." {
			continue
		}
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return bad("entry %q escapes the function directory", h.Name)
		}
		p := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			total += h.Size
			if total > maxUnpackedBytes {
				return bad("unpacks to more than %d bytes", maxUnpackedBytes)
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fs.FileMode(h.Mode)&0o755|0o400)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, io.LimitReader(tr, h.Size))
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			target := h.Linkname
			if filepath.IsAbs(target) {
				return bad("link %q points outside the function directory", h.Name)
			}
			resolved := filepath.Clean(filepath.Join(filepath.Dir(name), target))
			if resolved == ".." || strings.HasPrefix(resolved, "../") {
				return bad("link %q points outside the function directory", h.Name)
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(target, p); err != nil {
				return err
			}
		default:
			return bad("entry %q has unsupported type %q", h.Name, h.Typeflag)
		}
	}
}

// Pack writes dir as a tar.gz archive to w, the form Unpack reads. Files
// and directories only (symlinks inside dir are kept as links).
func Pack(w io.Writer, dir string) error {
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
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
