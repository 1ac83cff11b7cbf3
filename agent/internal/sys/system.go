// Package sys is the boundary between the agent and the kernel for everything a test cannot do
// unprivileged: mounting, naming the host, raising lo, rebooting, and waiting for any child.
// Linux is the real implementation; Fake records calls so PID-1 behaviour is testable as a
// normal user.
package sys

import "syscall"

// Reboot commands (linux/reboot.h).
const (
	RebootPowerOff = 0x4321fedc // LINUX_REBOOT_CMD_POWER_OFF
	RebootRestart  = 0x01234567 // LINUX_REBOOT_CMD_RESTART
	RebootCADOff   = 0x00000000 // LINUX_REBOOT_CMD_CAD_OFF: Ctrl-Alt-Del sends SIGINT to PID 1
)

// System is what PID 1 needs from the kernel.
type System interface {
	// EnsureStdio makes fds 0-2 valid (the kernel leaves them closed when the image has no
	// /dev/console), so later files cannot land on them. Must run before anything opens a file.
	EnsureStdio() error
	Mount(source, target, fstype string, flags uintptr, data string) error
	Unmount(target string, flags int) error
	// MountPoints lists what /proc/self/mountinfo shows as mounted.
	MountPoints() (map[string]bool, error)
	MkdirAll(path string, mode uint32) error
	// Symlink creates newname -> oldname unless newname exists.
	Symlink(oldname, newname string) error
	ReadFile(path string) ([]byte, error)
	Sethostname(name string) error
	// LinkUp sets IFF_UP on an interface (the loopback needs nothing else: the kernel gives it
	// 127.0.0.1 and ::1 when it comes up).
	LinkUp(ifname string) error
	Sync()
	Reboot(cmd int) error
	Kill(pid int, sig syscall.Signal) error
	Wait4(pid int, status *syscall.WaitStatus, options int) (int, error)
}
