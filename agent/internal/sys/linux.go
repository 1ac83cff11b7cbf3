package sys

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"unsafe"
)

// Linux is the real System.
type Linux struct{}

var _ System = Linux{}

func (Linux) EnsureStdio() error {
	var missing []int
	for fd := 0; fd < 3; fd++ {
		if _, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0); e == syscall.EBADF {
			missing = append(missing, fd)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	// No console at boot means /dev was empty: mount devtmpfs first (raw calls only, nothing
	// here may open a file that would take one of the free slots by accident).
	var st syscall.Stat_t
	if syscall.Stat("/dev/console", &st) != nil {
		_ = syscall.Mkdir("/dev", 0o755) // EEXIST is the normal case; Mount reports real trouble
		if err := syscall.Mount("devtmpfs", "/dev", "devtmpfs", syscall.MS_NOSUID, "mode=0755"); err != nil {
			return errors.New("Cannot mount /dev for the console: " + err.Error())
		}
	}
	for _, fd := range missing {
		nfd, err := syscall.Open("/dev/console", syscall.O_RDWR|syscall.O_NOCTTY, 0)
		if err != nil {
			if nfd, err = syscall.Open("/dev/null", syscall.O_RDWR, 0); err != nil {
				return errors.New("Cannot open /dev/console or /dev/null for stdio: " + err.Error())
			}
		}
		if nfd != fd {
			if err := syscall.Dup3(nfd, fd, 0); err != nil {
				return errors.New("Cannot set up stdio: " + err.Error())
			}
			syscall.Close(nfd)
		}
	}
	return nil
}

func (Linux) Mount(source, target, fstype string, flags uintptr, data string) error {
	return syscall.Mount(source, target, fstype, flags, data)
}

func (Linux) Unmount(target string, flags int) error { return syscall.Unmount(target, flags) }

func (Linux) MountPoints() (map[string]bool, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	return ParseMountinfo(string(b)), nil
}

// ParseMountinfo returns the mount points (field 5, octal escapes decoded) of mountinfo text.
func ParseMountinfo(text string) map[string]bool {
	out := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 {
			out[unescapeOctal(f[4])] = true
		}
	}
	return out
}

func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b = append(b, (s[i+1]-'0')<<6|(s[i+2]-'0')<<3|(s[i+3]-'0'))
			i += 3
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

func (Linux) MkdirAll(path string, mode uint32) error { return os.MkdirAll(path, fs.FileMode(mode)) }

func (Linux) Symlink(oldname, newname string) error {
	if _, err := os.Lstat(newname); err == nil {
		return nil
	}
	return os.Symlink(oldname, newname)
}

func (Linux) ReadFile(path string) ([]byte, error) { return os.ReadFile(path) }

func (Linux) Sethostname(name string) error { return syscall.Sethostname([]byte(name)) }

// ifreq for SIOCGIFFLAGS/SIOCSIFFLAGS: 16-byte name, then a short of flags; the kernel's
// struct is 40 bytes on 64-bit (a union padded to the size of struct ifmap).
type ifreqFlags struct {
	Name  [16]byte
	Flags uint16
	_     [22]byte
}

func (Linux) LinkUp(ifname string) error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	var req ifreqFlags
	copy(req.Name[:15], ifname)
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.SIOCGIFFLAGS, uintptr(unsafe.Pointer(&req))); e != 0 {
		return e
	}
	if req.Flags&syscall.IFF_UP != 0 {
		return nil
	}
	req.Flags |= syscall.IFF_UP
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.SIOCSIFFLAGS, uintptr(unsafe.Pointer(&req))); e != 0 {
		return e
	}
	return nil
}

func (Linux) Sync() { syscall.Sync() }

func (Linux) Reboot(cmd int) error { return syscall.Reboot(cmd) }

func (Linux) Kill(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }

func (Linux) Wait4(pid int, status *syscall.WaitStatus, options int) (int, error) {
	return syscall.Wait4(pid, status, options, nil)
}
