// Package pid1 is what the agent does when the kernel starts it as init: mount the API
// filesystems, name the host, raise the loopback, mount host shares, and at the end stop
// every process, sync, unmount and power off.
//
// Every duty goes through sys.System, so the sequence is tested with a fake. Boot runs named
// steps and keeps going when one fails (PID 1 exiting panics the kernel); each failure is
// logged with its step name and returned for tests.
package pid1

import (
	"errors"
	"strings"
	"syscall"

	"rootforge/agent/internal/config"
	"rootforge/agent/internal/logx"
	"rootforge/agent/internal/sys"
)

// State remembers what Boot mounted, for Halt to unmount in reverse.
type State struct {
	Mounted []string
}

// StepError is one failed boot step.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return "boot step " + e.Step + ": " + e.Err.Error() }

type apiMount struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
	mode                   uint32
}

const (
	nosuid = syscall.MS_NOSUID
	nodev  = syscall.MS_NODEV
	noexec = syscall.MS_NOEXEC
)

// APIMounts are the filesystems every program expects, in mount order (each after its parent).
var APIMounts = []apiMount{
	{"proc", "/proc", "proc", nosuid | nodev | noexec, "", 0o555},
	{"sysfs", "/sys", "sysfs", nosuid | nodev | noexec, "", 0o555},
	{"devtmpfs", "/dev", "devtmpfs", nosuid, "mode=0755", 0o755},
	// ptmxmode=0666: unprivileged users can open /dev/pts/ptmx (the default is 0000).
	{"devpts", "/dev/pts", "devpts", nosuid | noexec, "mode=0620,ptmxmode=0666,gid=5", 0o755},
	{"tmpfs", "/dev/shm", "tmpfs", nosuid | nodev, "mode=1777", 0o1777},
	{"tmpfs", "/run", "tmpfs", nosuid | nodev, "mode=0755", 0o755},
	{"tmpfs", "/tmp", "tmpfs", nosuid | nodev, "mode=1777", 0o1777},
}

// devLinks are the /dev entries devtmpfs does not create but shells rely on (bash process
// substitution uses /dev/fd).
var devLinks = [][2]string{
	{"/proc/self/fd", "/dev/fd"},
	{"/proc/self/fd/0", "/dev/stdin"},
	{"/proc/self/fd/1", "/dev/stdout"},
	{"/proc/self/fd/2", "/dev/stderr"},
}

type step struct {
	name string
	run  func() error
}

// Boot performs all PID-1 start-up duties: BootEarly, then BootLate.
func Boot(s sys.System, cfg *config.Config) (*State, []error) {
	st, errs := BootEarly(s, cfg)
	return st, append(errs, BootLate(s, cfg, st)...)
}

// BootEarly is what the agent needs before it can answer the host: stdio and the API
// filesystems (/dev for the virtio-serial port, /proc for itself). Kept short on purpose: the
// host times "init started → agent ready".
func BootEarly(s sys.System, cfg *config.Config) (*State, []error) {
	st := &State{}
	return st, runSteps([]step{
		{"stdio", s.EnsureStdio},
		{"api-filesystems", func() error { return st.mountAPI(s) }},
		{"dev-links", func() error { return devSymlinks(s) }},
	})
}

// BootLate is the rest, run while the agent already serves: execs and file requests wait for
// it (server.Options.Gate), so commands still see the hostname, lo and the shares.
func BootLate(s sys.System, cfg *config.Config, st *State) []error {
	errs := runSteps([]step{
		{"hostname", func() error { return s.Sethostname(hostname(s, cfg)) }},
		{"loopback", func() error { return s.LinkUp("lo") }},
		// Ctrl-Alt-Del (Firecracker's SendCtrlAltDel) then sends SIGINT to PID 1 instead of
		// rebooting at once, so it becomes a clean shutdown.
		{"ctrl-alt-del", func() error {
			// EINVAL: PID 1 of a PID namespace (a container), where Ctrl-Alt-Del is moot.
			if err := s.Reboot(sys.RebootCADOff); err != nil && err != syscall.EINVAL {
				return err
			}
			return nil
		}},
		{"shares", func() error { return st.mountShares(s, cfg.Mounts) }},
	})
	logx.Info("boot done: " + strings.Join(st.Mounted, " ") + " mounted")
	return errs
}

func runSteps(steps []step) []error {
	var errs []error
	for _, stp := range steps {
		if err := stp.run(); err != nil {
			e := &StepError{Step: stp.name, Err: err}
			logx.Warn(e.Error())
			errs = append(errs, e)
		}
	}
	return errs
}

func (st *State) mountAPI(s sys.System) error {
	var errs []error
	for _, m := range APIMounts {
		// Read the table each time: /proc itself is mounted by the first step, and an
		// initramfs or the kernel (devtmpfs automount) may have mounted some of these already.
		mounted, _ := s.MountPoints() // before /proc exists this fails: nothing is mounted yet
		if mounted[m.target] {
			continue
		}
		if err := s.MkdirAll(m.target, m.mode); err != nil {
			errs = append(errs, errors.New("Cannot create mount point: "+err.Error()+" ("+m.target+")"))
		}
		if err := s.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil {
			errs = append(errs, errors.New("Cannot mount "+m.fstype+": "+err.Error()+" ("+m.target+")"))
			continue
		}
		st.Mounted = append(st.Mounted, m.target)
	}
	return joinErrs(errs)
}

func devSymlinks(s sys.System) error {
	var errs []error
	for _, l := range devLinks {
		if err := s.Symlink(l[0], l[1]); err != nil {
			errs = append(errs, errors.New("Cannot link "+l[1]+": "+err.Error()))
		}
	}
	return joinErrs(errs)
}

// hostname is agent.json's, else /etc/hostname's first line, else config.DefaultHostname.
func hostname(s sys.System, cfg *config.Config) string {
	if cfg.Hostname != "" {
		return cfg.Hostname
	}
	if b, err := s.ReadFile("/etc/hostname"); err == nil {
		if h := strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]); h != "" {
			return h
		}
	}
	return config.DefaultHostname
}

// mountShares mounts virtio-fs and 9p shares. A share whose tag the VMM did not provide is
// logged and skipped: the same image boots with or without /workspace attached.
func (st *State) mountShares(s sys.System, mounts []config.Mount) error {
	var errs []error
	for _, m := range mounts {
		if err := s.MkdirAll(m.Target, 0o755); err != nil {
			errs = append(errs, errors.New("Cannot create mount point: "+err.Error()+" ("+m.Target+")"))
			continue
		}
		var flags uintptr
		if m.ReadOnly {
			flags |= syscall.MS_RDONLY
		}
		data := m.Options
		if m.Type == "9p" {
			data = joinOpts("trans=virtio,version=9p2000.L,msize=524288", m.Options)
		}
		if err := s.Mount(m.Tag, m.Target, m.Type, flags, data); err != nil {
			hint := ""
			if err == syscall.ENOENT || err == syscall.EINVAL {
				hint = ", is the tag attached to this VM?"
			}
			errs = append(errs, errors.New("Cannot mount share "+m.Tag+": "+err.Error()+hint+" ("+m.Target+")"))
			continue
		}
		st.Mounted = append(st.Mounted, m.Target)
	}
	return joinErrs(errs)
}

func joinOpts(a, b string) string {
	if b == "" {
		return a
	}
	return a + "," + b
}

// joinErrs is errors.Join for Go 1.19: nil for none, else the messages joined by "; ".
func joinErrs(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	msg := errs[0].Error()
	for _, e := range errs[1:] {
		msg += "; " + e.Error()
	}
	return errors.New(msg)
}

// MountMissing mounts the shares whose targets are not mount points yet (a service restarted
// by its manager must not stack a second mount on the first). Returns the targets it mounted.
func MountMissing(s sys.System, mounts []config.Mount) ([]string, error) {
	have, _ := s.MountPoints()
	var todo []config.Mount
	for _, m := range mounts {
		if !have[m.Target] {
			todo = append(todo, m)
		}
	}
	st := &State{}
	err := st.mountShares(s, todo)
	return st.Mounted, err
}
