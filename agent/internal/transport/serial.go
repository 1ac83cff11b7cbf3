package transport

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FindSerialPort returns the /dev path of the virtio-serial port named name, looking in
// <sysfs>/class/virtio-ports/<vportNpM>/name.
func FindSerialPort(sysfs, dev, name string) (string, error) {
	dir := filepath.Join(sysfs, "class", "virtio-ports")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "name"))
		if err == nil && strings.TrimSpace(string(b)) == name {
			return filepath.Join(dev, e.Name()), nil
		}
	}
	return "", errors.New("Cannot find virtio-serial port: no port has that name (" + name + ")")
}

// SerialPort is an open virtio-serial port. The device stays open for the agent's life: while
// no guest holds it open, QEMU drops what the host sends.
//
// The port has no connections, only a host that is or is not attached. While none is, read()
// returns 0 at once. A "session" on the port therefore starts with the first bytes the host
// sends and ends when the host detaches after having sent something.
type SerialPort struct {
	f    io.ReadWriteCloser
	wmu  sync.Mutex
	poll time.Duration
}

// OpenSerial opens the port device read/write.
func OpenSerial(path string) (*SerialPort, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return &SerialPort{f: f, poll: 100 * time.Millisecond}, nil
}

// NewSerialPort wraps an already open device (tests pass a scripted fake).
func NewSerialPort(f io.ReadWriteCloser, poll time.Duration) *SerialPort {
	return &SerialPort{f: f, poll: poll}
}

// Session returns a connection for one host attachment. Close ends it without closing the
// device.
func (p *SerialPort) Session() io.ReadWriteCloser { return &serialConn{p: p} }

// Close closes the device.
func (p *SerialPort) Close() error { return p.f.Close() }

type serialConn struct {
	p       *SerialPort
	gotData bool // only the session's read loop reads
	closed  atomic.Bool
}

func (c *serialConn) Read(b []byte) (int, error) {
	for {
		if c.closed.Load() {
			return 0, io.EOF
		}
		n, err := c.p.f.Read(b)
		if n > 0 {
			c.gotData = true
			return n, nil
		}
		if err != nil && err != io.EOF {
			return 0, err
		}
		// read() returned 0: no host attached. Before the host has spoken that is the idle
		// state; afterwards it means the host went away.
		if c.gotData {
			return 0, io.EOF
		}
		time.Sleep(c.p.poll)
	}
}

// Write blocks while no host is attached (the kernel holds the data until one is).
func (c *serialConn) Write(b []byte) (int, error) {
	c.p.wmu.Lock()
	defer c.p.wmu.Unlock()
	if c.closed.Load() {
		return 0, os.ErrClosed
	}
	return c.p.f.Write(b)
}

func (c *serialConn) Close() error {
	c.closed.Store(true)
	return nil
}

// Stdio is the agent's stdin and stdout as one connection.
type Stdio struct{}

func (Stdio) Read(b []byte) (int, error)  { return os.Stdin.Read(b) }
func (Stdio) Write(b []byte) (int, error) { return os.Stdout.Write(b) }
func (Stdio) Close() error {
	err := os.Stdin.Close()
	if err2 := os.Stdout.Close(); err == nil {
		err = err2
	}
	return err
}
