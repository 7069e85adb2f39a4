package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The root a sandboxed process sees. The init builds it in its own mount
// namespace on a fresh tmpfs and pivots into it, so the process sees none
// of the host's files but these:
//
//   - the system directories below, read-only (programs and libraries);
//   - a short list of files from /etc, read-only, and a passwd and group
//     naming only root, nobody and the process's own user;
//   - the paths in Options.ReadOnly (the function's code, the SDKs),
//     read-only, at the same paths as on the host;
//   - a private /tmp and /dev/shm of at most Options.TmpSize bytes each
//     (tmpfs, whose pages the kernel charges to the process's memory
//     cgroup, so what it writes there counts against its memory limit and
//     is gone with the instance);
//   - a minimal /dev (null, zero, full, random, urandom, and the fd links)
//     and a /proc of its own PID namespace.
//
// Not the host's /tmp, /dev/shm, home or project directories, the cgroup
// tree, other functions' code, or Mote's data directory.

// systemDirs are bound read-only where the host has them; a symbolic link
// (a merged /usr's /bin -> usr/bin) is copied as a link.
var systemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}

// etcFiles are the entries of /etc that programs need to run: the dynamic
// linker's cache, time zone, name resolution, TLS roots, MIME types, and
// Debian's alternatives links. Nothing holding credentials: of /etc/ssl
// only the public certificates and OpenSSL's config, not private/.
var etcFiles = []string{
	"alternatives", "ca-certificates", "ca-certificates.conf", "debian_version",
	"gai.conf", "host.conf", "hosts", "ld.so.cache", "ld.so.conf", "ld.so.conf.d",
	"localtime", "mime.types", "nsswitch.conf", "os-release", "protocols",
	"python3", "resolv.conf", "services", "ssl/certs", "ssl/openssl.cnf",
}

// devNodes are the device files a process may open.
//
// No /dev/tty: the process has no controlling terminal (the init starts
// it in a session of its own), and a terminal it could reach would let it
// type into the operator's shell.
var devNodes = []string{"null", "zero", "full", "random", "urandom"}

// roFlags are the flags of every read-only bind mount.
const roFlags = unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV

// buildRoot makes the process's root in dir (an empty directory of the
// host, used as a mount point in this mount namespace only) and pivots
// into it. It runs in the init, as root, after the mount namespace was
// made private.
func buildRoot(dir string, cfg *initConfig) error {
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size=4m"); err != nil {
		return fmt.Errorf("mount root tmpfs: %w", err)
	}
	for _, d := range systemDirs {
		if err := mirror(dir, d); err != nil {
			return err
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "etc"), 0o755); err != nil {
		return err
	}
	for _, name := range etcFiles {
		if err := mirror(dir, "/etc/"+name); err != nil {
			return err
		}
	}
	if err := writeUsers(filepath.Join(dir, "etc"), cfg.UID, cfg.GID); err != nil {
		return err
	}
	size := strconv.FormatInt(cfg.TmpSize, 10)
	if err := mountTmpfs(filepath.Join(dir, "tmp"), "mode=1777,size="+size); err != nil {
		return err
	}
	if err := buildDev(filepath.Join(dir, "dev"), size); err != nil {
		return err
	}
	// Parents first: a path below one already bound is visible through it.
	ro := slices.Clone(cfg.ReadOnly)
	slices.SortFunc(ro, func(a, b string) int { return len(filepath.Clean(a)) - len(filepath.Clean(b)) })
	for _, p := range ro {
		if err := bindReadOnly(dir, p); err != nil {
			return err
		}
	}
	if cfg.NewPID {
		// A /proc of its own, so the process sees only its own processes.
		p := filepath.Join(dir, "proc")
		if err := os.Mkdir(p, 0o555); err != nil {
			return err
		}
		if err := unix.Mount("proc", p, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("mount /proc: %w", err)
		}
	}
	old := filepath.Join(dir, ".old")
	if err := os.Mkdir(old, 0o700); err != nil {
		return err
	}
	if err := unix.PivotRoot(dir, old); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	if err := unix.Unmount("/.old", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach host root: %w", err)
	}
	if err := os.Remove("/.old"); err != nil {
		return err
	}
	// Nothing but /tmp and /dev/shm is writable.
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("make root read-only: %w", err)
	}
	return nil
}

// mirror makes host path p appear at the same path under root: a link as
// the same link, a directory or file as a read-only bind mount. A path the
// host lacks is skipped.
func mirror(root, p string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil
	}
	dst := filepath.Join(root, p)
	if fi.Mode()&os.ModeSymlink != 0 {
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.Symlink(target, dst)
	}
	return bindReadOnly(root, p)
}

// bindReadOnly bind-mounts host path p (a directory or a file) read-only,
// without setuid or device files, at the same path under root. A path
// already inside a read-only mount (a file below /usr, say) is there.
func bindReadOnly(root, p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("read-only path %q is not absolute", p)
	}
	p = filepath.Clean(p)
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("read-only path: %w", err)
	}
	dst := filepath.Join(root, p)
	if _, err := os.Lstat(dst); err == nil {
		return nil // a system directory or an earlier path covers it
	}
	if err := mkdirAllUnder(root, filepath.Dir(p)); err != nil {
		if errors.Is(err, unix.EROFS) {
			return nil // inside a read-only bind of an earlier path
		}
		return fmt.Errorf("read-only path %s: %w", p, err)
	}
	if fi.IsDir() {
		err = os.Mkdir(dst, 0o755)
	} else {
		err = os.WriteFile(dst, nil, 0o444)
	}
	if err != nil {
		return fmt.Errorf("read-only path %s: %w", p, err)
	}
	if err := unix.Mount(p, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", p, err)
	}
	return readOnlyTree(dst)
}

// readOnlyTree makes the mount at dir and every mount below it read-only,
// nosuid and nodev. A recursive bind brings the host's submounts along
// (a separate /usr/local, a tmpfs below a granted path), and a remount
// changes only the top one: mount_setattr with AT_RECURSIVE changes them
// all at once. Kernels before 5.12 lack it; there each submount listed
// in mountinfo is remounted.
func readOnlyTree(dir string) error {
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	err := unix.MountSetattr(-1, dir, unix.AT_RECURSIVE, &attr)
	if err == nil {
		return nil
	}
	if err != unix.ENOSYS {
		return fmt.Errorf("make %s read-only: %w", dir, err)
	}
	points, err := mountsBelow(dir)
	if err != nil {
		return err
	}
	for _, m := range points {
		if err := unix.Mount("", m, "", roFlags, ""); err != nil {
			return fmt.Errorf("make %s read-only: %w", m, err)
		}
	}
	return nil
}

// mountsBelow lists dir and the mount points below it, from mountinfo.
func mountsBelow(dir string) ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		if p := f[4]; p == dir || strings.HasPrefix(p, dir+"/") {
			out = append(out, p)
		}
	}
	return out, nil
}

// mkdirAllUnder creates dir's path below root, each new directory 0755.
// It refuses to follow a link below root, which an earlier step created
// and a later one must not walk through.
func mkdirAllUnder(root, dir string) error {
	cur := root
	for _, part := range strings.Split(strings.Trim(dir, "/"), "/") {
		if part == "" {
			continue
		}
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		switch {
		case err == nil && fi.IsDir():
			continue
		case err == nil:
			return fmt.Errorf("%s is not a directory", strings.TrimPrefix(cur, root))
		}
		if err := os.Mkdir(cur, 0o755); err != nil {
			return err
		}
	}
	return nil
}

func mountTmpfs(dir, opts string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	return nil
}

// buildDev makes a minimal /dev: the harmless character devices bound
// from the host, the usual links, and a private /dev/shm.
func buildDev(dev, shmSize string) error {
	if err := os.Mkdir(dev, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0755,size=64k"); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	for _, n := range devNodes {
		src, dst := "/dev/"+n, filepath.Join(dev, n)
		if _, err := os.Stat(src); err != nil {
			continue
		}
		if err := os.WriteFile(dst, nil, 0o666); err != nil {
			return err
		}
		if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s: %w", src, err)
		}
		if err := unix.Mount("", dst, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("remount %s: %w", src, err)
		}
	}
	for name, target := range map[string]string{
		"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
		"stderr": "/proc/self/fd/2",
	} {
		if err := os.Symlink(target, filepath.Join(dev, name)); err != nil {
			return err
		}
	}
	return mountTmpfs(filepath.Join(dev, "shm"), "mode=1777,size="+shmSize)
}

// writeUsers writes the passwd and group files of the process's root.
func writeUsers(etc string, uid, gid int) error {
	u, g := strconv.Itoa(uid), strconv.Itoa(gid)
	passwd := "root:x:0:0:root:/root:/usr/sbin/nologin\n" +
		"function:x:" + u + ":" + g + ":Mote function:/tmp:/usr/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
	group := "root:x:0:\nfunction:x:" + g + ":\nnogroup:x:65534:\n"
	if err := os.WriteFile(filepath.Join(etc, "passwd"), []byte(passwd), 0o444); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(etc, "group"), []byte(group), 0o444)
}
