package pid1

import (
	"io"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"rootforge/agent/internal/config"
	"rootforge/agent/internal/logx"
	"rootforge/agent/internal/sys"
)

func init() { logx.SetOutput(io.Discard, false) }

func TestBootSequence(t *testing.T) {
	f := sys.NewFake()
	f.Mounted["/"] = true
	f.Mounted["/dev"] = true // the kernel's devtmpfs automount
	cfg := config.Defaults()
	cfg.Hostname = "sandbox"
	cfg.Mounts = []config.Mount{
		{Tag: "workspace", Target: "/workspace", Type: "virtiofs"},
		{Tag: "skills", Target: "/skills", Type: "9p", ReadOnly: true},
	}
	f.Fail["mount /workspace"] = syscall.ENOENT // tag not attached: logged, not fatal
	st, errs := Boot(f, cfg)
	want := []string{
		"stdio",
		"mkdir /proc 555", "mount /proc proc proc 0xe ",
		"mkdir /sys 555", "mount /sys sysfs sysfs 0xe ",
		"mkdir /dev/pts 755", "mount /dev/pts devpts devpts 0xa mode=0620,ptmxmode=0666,gid=5",
		"mkdir /dev/shm 1777", "mount /dev/shm tmpfs tmpfs 0x6 mode=1777",
		"mkdir /run 755", "mount /run tmpfs tmpfs 0x6 mode=0755",
		"mkdir /tmp 1777", "mount /tmp tmpfs tmpfs 0x6 mode=1777",
		"symlink /dev/fd -> /proc/self/fd", "symlink /dev/stdin -> /proc/self/fd/0",
		"symlink /dev/stdout -> /proc/self/fd/1", "symlink /dev/stderr -> /proc/self/fd/2",
		"hostname sandbox", "linkup lo", "reboot 0x0",
		"mkdir /workspace 755", "mount /workspace virtiofs workspace 0x0 ",
		"mkdir /skills 755", "mount /skills 9p skills 0x1 trans=virtio,version=9p2000.L,msize=524288",
	}
	if got := f.Log(); !reflect.DeepEqual(got, want) {
		t.Fatalf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !reflect.DeepEqual(st.Mounted, []string{"/proc", "/sys", "/dev/pts", "/dev/shm", "/run", "/tmp", "/skills"}) {
		t.Fatalf("mounted %v", st.Mounted)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "boot step shares: Cannot mount share workspace") {
		t.Fatalf("errors %v", errs)
	}
}

func TestHostnameFallbacks(t *testing.T) {
	f := sys.NewFake()
	f.Files["/etc/hostname"] = []byte("from-image\nignored\n")
	if h := hostname(f, config.Defaults()); h != "from-image" {
		t.Fatal(h)
	}
	if h := hostname(sys.NewFake(), config.Defaults()); h != config.DefaultHostname {
		t.Fatal(h)
	}
}

func TestBootKeepsGoingWhenStepsFail(t *testing.T) {
	f := sys.NewFake()
	f.Fail["mount /proc"] = syscall.EPERM
	f.Fail["hostname"] = syscall.EPERM
	f.Fail["linkup"] = syscall.ENODEV
	_, errs := Boot(f, config.Defaults())
	if len(errs) != 3 {
		t.Fatalf("errors %v", errs)
	}
	log := strings.Join(f.Log(), "\n")
	for _, want := range []string{"mount /tmp tmpfs", "reboot 0x0"} {
		if !strings.Contains(log, want) {
			t.Fatalf("%q not attempted after failures:\n%s", want, log)
		}
	}
}

func TestHaltSequence(t *testing.T) {
	f := sys.NewFake()
	st := &State{Mounted: []string{"/proc", "/dev/pts", "/tmp", "/workspace"}}
	f.Fail["umount /dev/pts"] = syscall.EBUSY // busy mounts are skipped
	// One child exits after SIGTERM, one survives until SIGKILL.
	reaps := 0
	reap := func() bool {
		reaps++
		log := strings.Join(f.Log(), "\n")
		return !strings.Contains(log, "kill -1 9")
	}
	start := time.Now()
	if err := Halt(f, st, reap, 100*time.Millisecond, sys.RebootPowerOff); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("halt took %v", el)
	}
	want := []string{"kill -1 15", "kill -1 9", "sync", "umount /workspace", "umount /tmp", "umount /dev/pts", "umount /proc",
		"mount / " + "  0x21 ", "sync", "reboot 0x4321fedc"}
	if got := f.Log(); !reflect.DeepEqual(got, want) {
		t.Fatalf("calls:\n%s", strings.Join(got, "\n"))
	}
}

func TestHaltWithoutStragglersSkipsSIGKILL(t *testing.T) {
	f := sys.NewFake()
	if err := Halt(f, &State{}, func() bool { return false }, time.Second, sys.RebootRestart); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.Log(), ","); got != "kill -1 15,sync,mount /   0x21 ,sync,reboot 0x1234567" {
		t.Fatal(got)
	}
}

func TestHaltReportsFailedReboot(t *testing.T) {
	f := sys.NewFake()
	f.Fail["reboot"] = syscall.EPERM
	err := Halt(f, &State{}, func() bool { return false }, time.Second, sys.RebootPowerOff)
	if err == nil || !strings.Contains(err.Error(), "Cannot power off") {
		t.Fatal(err)
	}
}

func TestCtrlAltDelRefusedInAContainerIsFine(t *testing.T) {
	f := sys.NewFake()
	f.Fail["reboot 0x0"] = syscall.EINVAL // PID 1 of a PID namespace
	if _, errs := Boot(f, config.Defaults()); len(errs) != 0 {
		t.Fatal(errs)
	}
}
