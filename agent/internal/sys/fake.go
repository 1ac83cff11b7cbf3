package sys

import (
	"strconv"
	"sync"
	"syscall"
)

// Fake is a System that changes nothing: it records each call as one line ("mount proc /proc
// proc 0xe "), keeps a mount table, and replays scripted wait4 results, so tests can assert
// the PID-1 sequence without privileges.
type Fake struct {
	mu      sync.Mutex
	Calls   []string
	Mounted map[string]bool
	Files   map[string][]byte
	// Fail maps a call prefix ("mount /mnt/x") to the error it returns.
	Fail map[string]error
	// Exits are handed out by Wait4(-1, WNOHANG) in order; after them come ECHILD (NoChildren)
	// or 0 (children still running).
	Exits      []FakeExit
	NoChildren bool
}

// FakeExit is one child a fake wait4 reaps.
type FakeExit struct {
	Pid    int
	Status syscall.WaitStatus
}

var _ System = (*Fake)(nil)

// NewFake returns a Fake with empty tables.
func NewFake() *Fake {
	return &Fake{Mounted: map[string]bool{}, Files: map[string][]byte{}, Fail: map[string]error{}}
}

func (f *Fake) record(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls = append(f.Calls, call)
	for prefix, err := range f.Fail {
		if len(call) >= len(prefix) && call[:len(prefix)] == prefix {
			return err
		}
	}
	return nil
}

// Log returns a copy of the calls so far.
func (f *Fake) Log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.Calls...)
}

func (f *Fake) EnsureStdio() error { return f.record("stdio") }

func (f *Fake) Mount(source, target, fstype string, flags uintptr, data string) error {
	err := f.record("mount " + target + " " + fstype + " " + source + " 0x" + strconv.FormatUint(uint64(flags), 16) + " " + data)
	if err == nil {
		f.mu.Lock()
		f.Mounted[target] = true
		f.mu.Unlock()
	}
	return err
}

func (f *Fake) Unmount(target string, flags int) error {
	err := f.record("umount " + target)
	if err == nil {
		f.mu.Lock()
		delete(f.Mounted, target)
		f.mu.Unlock()
	}
	return err
}

func (f *Fake) MountPoints() (map[string]bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]bool{}
	for k := range f.Mounted {
		out[k] = true
	}
	return out, nil
}

func (f *Fake) MkdirAll(path string, mode uint32) error {
	return f.record("mkdir " + path + " " + strconv.FormatUint(uint64(mode), 8))
}

func (f *Fake) Symlink(oldname, newname string) error {
	return f.record("symlink " + newname + " -> " + oldname)
}

func (f *Fake) ReadFile(path string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.Files[path]
	if !ok {
		return nil, syscall.ENOENT
	}
	return b, nil
}

func (f *Fake) Sethostname(name string) error { return f.record("hostname " + name) }

func (f *Fake) LinkUp(ifname string) error { return f.record("linkup " + ifname) }

func (f *Fake) Sync() { _ = f.record("sync") }

func (f *Fake) Reboot(cmd int) error {
	return f.record("reboot 0x" + strconv.FormatUint(uint64(uint32(cmd)), 16))
}

func (f *Fake) Kill(pid int, sig syscall.Signal) error {
	return f.record("kill " + strconv.Itoa(pid) + " " + strconv.Itoa(int(sig)))
}

func (f *Fake) Wait4(pid int, status *syscall.WaitStatus, options int) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.Exits) > 0 {
		e := f.Exits[0]
		f.Exits = f.Exits[1:]
		*status = e.Status
		return e.Pid, nil
	}
	if f.NoChildren {
		return -1, syscall.ECHILD
	}
	return 0, nil
}

// AddExit queues a child for Wait4 to reap.
func (f *Fake) AddExit(pid int, status syscall.WaitStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Exits = append(f.Exits, FakeExit{pid, status})
}

// SetNoChildren makes Wait4 report ECHILD once the queued exits are gone.
func (f *Fake) SetNoChildren(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.NoChildren = v
}
