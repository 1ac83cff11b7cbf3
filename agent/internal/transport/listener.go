// Package transport gives the agent its connections to the host, without the net package
// (about 400 KB of binary): sockets are made with raw syscalls and wrapped in *os.File, whose
// runtime poller gives non-blocking reads, writes, and Close that interrupts them.
//
//	vsock          AF_VSOCK listener, CID any (Firecracker relays its host-side Unix socket
//	               here after "CONNECT <port>\n")
//	virtio-serial  a /dev/vportNpM char device found by name (QEMU virtserialport)
//	unix           a Unix socket listener (tests, local use: --listen unix:/path)
//	stdio          stdin/stdout (--stdio)
package transport

import (
	"errors"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// Listener accepts stream connections on a raw socket.
type Listener struct {
	f       *os.File
	rc      syscall.RawConn
	Name    string
	cleanup func()
}

const (
	afVsock      = 40         // AF_VSOCK
	vmaddrCIDAny = 0xffffffff // VMADDR_CID_ANY
)

// sockaddrVM is struct sockaddr_vm (linux/vm_sockets.h), 16 bytes.
type sockaddrVM struct {
	Family    uint16
	Reserved1 uint16
	Port      uint32
	CID       uint32
	Flags     uint8
	Zero      [3]uint8
}

func newListener(fd int, name string, cleanup func()) (*Listener, error) {
	if err := syscall.Listen(fd, 64); err != nil {
		syscall.Close(fd)
		return nil, errors.New("Cannot listen: " + err.Error() + " (" + name + ")")
	}
	f := os.NewFile(uintptr(fd), name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, errors.New("Cannot listen: " + err.Error() + " (" + name + ")")
	}
	return &Listener{f: f, rc: rc, Name: name, cleanup: cleanup}, nil
}

// ListenUnix listens on a Unix socket at path (replacing a stale socket file), mode 0600.
func ListenUnix(path string) (*Listener, error) {
	name := "unix:" + path
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, errors.New("Cannot create socket: " + err.Error() + " (" + name + ")")
	}
	if st, err := os.Lstat(path); err == nil && st.Mode()&os.ModeSocket != 0 {
		if err := os.Remove(path); err != nil {
			syscall.Close(fd)
			return nil, errors.New("Cannot remove stale socket: " + err.Error() + " (" + path + ")")
		}
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		syscall.Close(fd)
		return nil, errors.New("Cannot bind socket: " + err.Error() + " (" + path + ")")
	}
	if err := os.Chmod(path, 0o600); err != nil {
		syscall.Close(fd)
		return nil, errors.New("Cannot chmod socket: " + err.Error() + " (" + path + ")")
	}
	return newListener(fd, name, func() {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			os.Stderr.WriteString("rootforge-agent: warning: Cannot remove socket: " + err.Error() + "\n")
		}
	})
}

// ListenVsock listens on AF_VSOCK port for any CID. It fails with EAFNOSUPPORT until the
// vsock transport module is loaded, so callers retry.
func ListenVsock(port uint32) (*Listener, error) {
	name := "vsock:" + strconv.FormatUint(uint64(port), 10)
	fd, err := syscall.Socket(afVsock, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, &os.SyscallError{Syscall: "socket(AF_VSOCK)", Err: err}
	}
	sa := sockaddrVM{Family: afVsock, Port: port, CID: vmaddrCIDAny}
	if _, _, e := syscall.RawSyscall(syscall.SYS_BIND, uintptr(fd), uintptr(unsafe.Pointer(&sa)), unsafe.Sizeof(sa)); e != 0 {
		syscall.Close(fd)
		return nil, &os.SyscallError{Syscall: "bind(" + name + ")", Err: e}
	}
	return newListener(fd, name, nil)
}

// Accept waits for a connection. After Close it returns an error.
func (l *Listener) Accept() (*os.File, error) {
	var nfd int
	var aerr error
	err := l.rc.Read(func(fd uintptr) bool {
		// accept4 with a NULL address: vsock addresses are not in package syscall's decoder.
		r, _, e := syscall.Syscall6(syscall.SYS_ACCEPT4, fd, 0, 0, syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0, 0)
		if e == syscall.EAGAIN || e == syscall.EINTR {
			return false
		}
		if e != 0 {
			aerr = e
		}
		nfd = int(r)
		return true
	})
	if err != nil {
		return nil, err
	}
	if aerr != nil {
		return nil, &os.SyscallError{Syscall: "accept4", Err: aerr}
	}
	return os.NewFile(uintptr(nfd), l.Name), nil
}

// Close stops the listener; a pending Accept returns.
func (l *Listener) Close() error {
	err := l.f.Close()
	if l.cleanup != nil {
		l.cleanup()
	}
	return err
}
