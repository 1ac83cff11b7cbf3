package transport

import (
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestUnixListenerAcceptsAndCloseUnblocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	os.WriteFile(path, nil, 0o600) // a regular file is not replaced
	if _, err := ListenUnix(path); err == nil {
		t.Fatal("listened over a regular file")
	}
	os.Remove(path)
	l, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v", st.Mode())
	}
	go func() {
		fd, _ := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
		syscall.Connect(fd, &syscall.SockaddrUnix{Name: path})
		syscall.Write(fd, []byte("ping"))
		syscall.Close(fd)
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "ping" {
		t.Fatalf("%q %v", b, err)
	}
	c.Close()
	done := make(chan error)
	go func() { _, err := l.Accept(); done <- err }()
	time.Sleep(50 * time.Millisecond)
	l.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Accept after Close succeeded")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not unblock Accept")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("socket file left behind")
	}
}

func TestVsockWhereAvailable(t *testing.T) {
	l, err := ListenVsock(0x7ffe1234)
	if err != nil {
		t.Skipf("no AF_VSOCK here: %v", err)
	}
	l.Close()
}

func TestFindSerialPort(t *testing.T) {
	sysfs := t.TempDir()
	for name, port := range map[string]string{"vport0p1": "org.qemu.guest_agent.0", "vport1p1": "org.rootforge.agent"} {
		dir := filepath.Join(sysfs, "class", "virtio-ports", name)
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "name"), []byte(port+"\n"), 0o644)
	}
	p, err := FindSerialPort(sysfs, "/dev", "org.rootforge.agent")
	if err != nil || p != "/dev/vport1p1" {
		t.Fatal(p, err)
	}
	if _, err := FindSerialPort(sysfs, "/dev", "missing"); err == nil {
		t.Fatal("found a missing port")
	}
}

// fakePort replays what a virtio-serial port's read() returns: 0 while no host is attached.
type fakePort struct {
	mu     sync.Mutex
	reads  []string // "" means read() == 0
	writes []string
}

func (f *fakePort) Read(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reads) == 0 {
		return 0, io.EOF
	}
	r := f.reads[0]
	f.reads = f.reads[1:]
	if r == "" {
		return 0, io.EOF
	}
	return copy(b, r), nil
}

func (f *fakePort) Write(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes = append(f.writes, string(b))
	return len(b), nil
}

func (f *fakePort) Close() error { return nil }

func TestSerialSessionsFollowTheHost(t *testing.T) {
	fp := &fakePort{reads: []string{"", "", "hello", "", "again"}}
	p := NewSerialPort(fp, time.Millisecond)
	s1 := p.Session()
	buf := make([]byte, 16)
	// Idle reads (no host) are waited out; the first data starts the session.
	if n, err := s1.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("%q %v", buf[:n], err)
	}
	// The host detaching after it spoke ends the session.
	if _, err := s1.Read(buf); err != io.EOF {
		t.Fatalf("want EOF, got %v", err)
	}
	s1.Close()
	if _, err := s1.Write([]byte("stale")); err == nil {
		t.Fatal("write on a closed session succeeded")
	}
	s2 := p.Session()
	if n, err := s2.Read(buf); err != nil || string(buf[:n]) != "again" {
		t.Fatalf("%q %v", buf[:n], err)
	}
	s2.Write([]byte("ready"))
	if len(fp.writes) != 1 || fp.writes[0] != "ready" {
		t.Fatal(fp.writes)
	}
}
