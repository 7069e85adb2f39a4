package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// envInit marks a process as the sandbox init, and says which mode.
const (
	envInit   = "MOTE_SANDBOX_INIT"
	modeRun   = "1"
	modeProbe = "probe"
)

// initConfig is what Exec hands the init over its pipe (fd 3).
type initConfig struct {
	Argv     []string `json:"argv"`
	Env      []string `json:"env"`
	Dir      string   `json:"dir"`
	UID      int      `json:"uid"`
	GID      int      `json:"gid"`
	NewMount bool     `json:"new_mount"`
	// Root is the empty directory the init builds the process's own root
	// on (see buildRoot); empty: the host's root, with only Dir made
	// read-only (where Mote cannot pivot: no mount namespace).
	Root      string   `json:"root,omitempty"`
	ReadOnly  []string `json:"read_only,omitempty"`
	TmpSize   int64    `json:"tmp_size,omitempty"`
	NewCgroup bool     `json:"new_cgroup,omitempty"`
	NewPID    bool     `json:"new_pid"`
	NewUTS    bool     `json:"new_uts"`
	DropUser  bool     `json:"drop_user"`
	// Files is how many descriptors after the config pipe (4, 5, …) the
	// command gets, as 3, 4, ….
	Files int `json:"files,omitempty"`
}

// Exit codes of the init when the command never ran.
const (
	exitSetup    = 126 // the sandbox could not be set up
	exitNotFound = 127 // the command does not exist
)

// MaybeRunInit runs the sandbox init and never returns if this process was
// started as one (by Sandbox.Start); otherwise it returns at once. Call it
// first thing in main, and in TestMain of any test that starts sandboxed
// processes, before anything else runs.
func MaybeRunInit() {
	initHooked.Store(true)
	switch os.Getenv(envInit) {
	case "":
		return
	case modeProbe:
		os.Exit(0)
	}
	os.Exit(runInit())
}

// initHooked records that the program calls MaybeRunInit. A program that
// starts sandboxed processes without it would, re-executed as their init,
// run its own main again and start more: New refuses instead.
var initHooked atomic.Bool

// ErrNoInitHook is returned by New in a program that does not call
// MaybeRunInit before anything else.
var ErrNoInitHook = errors.New("sandbox: the program does not call sandbox.MaybeRunInit at the start of main (or TestMain); sandboxed processes would re-run it")

func initFail(code int, format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "mote-init: "+format+"\n", args...)
	return code
}

// runInit sets the sandbox up, starts the command and reaps until it has
// exited, returning the command's exit code (128+signal when killed).
func runInit() int {
	// Namespaces entered with unshare belong to the calling thread: the
	// command must be forked from that same thread.
	runtime.LockOSThread()
	os.Unsetenv(envInit)
	f := os.NewFile(3, "mote-init-config")
	var cfg initConfig
	if err := json.NewDecoder(f).Decode(&cfg); err != nil {
		// Mote closed the pipe without a command: it gave up on us.
		return initFail(exitSetup, "no command: %v", err)
	}
	f.Close()
	if cfg.NewMount {
		// Nothing mounted here may leak to the host.
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return initFail(exitSetup, "make mounts private: %v", err)
		}
		if cfg.Root != "" {
			if err := buildRoot(cfg.Root, &cfg); err != nil {
				return initFail(exitSetup, "build root: %v", err)
			}
		} else if err := setupSharedRoot(&cfg); err != nil {
			return initFail(exitSetup, "%v", err)
		}
	}
	if cfg.NewCgroup {
		// The init is in its own cgroup by now (Start put it there before
		// Exec handed over this config): that group becomes the root of
		// what the process sees in /proc/self/cgroup.
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return initFail(exitSetup, "cgroup namespace: %v", err)
		}
	}
	if cfg.NewUTS {
		_ = unix.Sethostname([]byte("mote"))
	}
	pid1 := os.Getpid() == 1
	if !pid1 {
		// Without a PID namespace, orphans come to us rather than to Mote.
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	}
	path, err := resolve(cfg.Argv[0], cfg.Dir, cfg.Env)
	if err != nil {
		return initFail(exitNotFound, "%v", err)
	}
	cmd := &exec.Cmd{Path: path, Args: cfg.Argv, Env: cfg.Env, Dir: cfg.Dir, Stdout: os.Stdout, Stderr: os.Stderr}
	for i := range cfg.Files {
		// Inherited without close-on-exec: set it, or the command would
		// get each twice (as 3… and as the init's own 4…).
		syscall.CloseOnExec(4 + i)
		cmd.ExtraFiles = append(cmd.ExtraFiles, os.NewFile(uintptr(4+i), "mote-file"))
	}
	// A session of its own: no controlling terminal to reach (and type
	// into), and a process group the init can kill as one.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	if cfg.DropUser {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(cfg.UID), Gid: uint32(cfg.GID), Groups: []uint32{}}
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	if err := harden(); err != nil {
		return initFail(exitSetup, "harden: %v", err)
	}
	if err := cmd.Start(); err != nil {
		return initFail(exitNotFound, "start %s: %v", cfg.Argv[0], err)
	}
	child := cmd.Process.Pid
	go func() {
		for s := range sigs {
			_ = syscall.Kill(child, s.(syscall.Signal))
		}
	}()
	code := -1
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil { // ECHILD: nothing left
			break
		}
		if pid != child || code >= 0 {
			continue
		}
		switch {
		case ws.Exited():
			code = ws.ExitStatus()
		case ws.Signaled():
			code = 128 + int(ws.Signal())
		default:
			continue
		}
		// The command is gone: take its descendants along.
		if pid1 {
			_ = unix.Kill(-1, unix.SIGKILL)
		} else {
			_ = unix.Kill(-child, unix.SIGKILL)
		}
	}
	if code < 0 {
		code = exitSetup
	}
	return code
}

// setupSharedRoot is the fallback without a root of the process's own
// (Options.SharedRoot): the host's file system, with the function's
// directory made read-only and a /proc of its own.
func setupSharedRoot(cfg *initConfig) error {
	if err := unix.Mount(cfg.Dir, cfg.Dir, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind function dir: %v", err)
	}
	if err := readOnlyTree(cfg.Dir); err != nil {
		return fmt.Errorf("function dir: %v", err)
	}
	if cfg.NewPID {
		if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("mount /proc: %v", err)
		}
	}
	return nil
}

// resolve finds the executable for name as exec.LookPath would with the
// command's own PATH, relative paths being taken from dir.
func resolve(name, dir string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if err := executable(p); err != nil {
			return "", fmt.Errorf("handler %s: %v", name, err)
		}
		return p, nil
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		p := filepath.Join(d, name)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("handler %s: not found in PATH %s", name, path)
}

// LookPath resolves a handler's executable the way the init will: a name
// with a slash relative to dir, else through the directories of PATH in
// env. It lets a runtime reject a function that can never start.
func LookPath(name, dir string, env []string) (string, error) {
	return resolve(name, dir, env)
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		if os.IsNotExist(err) {
			return fmt.Errorf("no such file")
		}
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("is a directory")
	}
	if fi.Mode()&0o111 == 0 {
		return fmt.Errorf("not executable")
	}
	return nil
}
