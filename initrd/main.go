// rootforge-initrd: the /init of the small initramfs `rootforge kernel from-deb` builds.
//
// A distribution kernel (Debian's cloud kernel) has virtio, virtio-blk and vsock as modules, so
// it cannot find a virtio root disk by itself. This program, run by the kernel as PID 1 from the
// initramfs, does the least needed to get to the image's own init:
//
//	mount devtmpfs, proc, sysfs
//	load the modules listed in /etc/initrd-modules, in order (finit_module; built-in and
//	  already-loaded ones are skipped, failures logged)
//	wait (bounded) for root= to appear, mount it (rootfstype=, rootflags=, ro/rw)
//	move /dev /proc /sys into it, free the initramfs, switch_root, exec init= (/sbin/init)
//
// Any failure prints one clear line to the console and ends the VM (initrd.onfail=reboot, the
// default, or poweroff), so the host sees a fast failure rather than a hung guest.
//
// Standard library only (no fmt: it is half the binary); static; runs as PID 1 throughout (the
// final exec keeps the PID).
package main

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

const (
	modulesList = "/etc/initrd-modules"
	newRoot     = "/root"
	ramfsMagic  = 0x858458f6
	tmpfsMagic  = 0x01021994
)

var start = time.Now()
var debug bool

func main() {
	mountAPI()
	ensureConsole()
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		fatal(reboot, "cannot read /proc/cmdline: "+err.Error())
	}
	args := parseCmdline(string(cmdline))
	debug = args.debug
	onFail := reboot
	if args.onFail == "poweroff" {
		onFail = powerOff
	}

	loaded, present, failed := loadModules(args.moduleParams)
	logLine("modules: " + strconv.Itoa(loaded) + " loaded, " + strconv.Itoa(present) + " already present, " + strconv.Itoa(failed) + " failed")

	if args.root == "" {
		fatal(onFail, "no root= on the kernel command line (e.g. root=/dev/vda)")
	}
	if !strings.HasPrefix(args.root, "/dev/") {
		fatal(onFail, "root="+args.root+" is not supported: use a device path such as /dev/vda (LABEL=/UUID= need udev)")
	}
	if args.rootDelay > 0 {
		time.Sleep(args.rootDelay)
	}
	if err := waitForDevice(args.root, args.rootWait); err != nil {
		fatal(onFail, "root device "+args.root+" did not appear within "+args.rootWait.String()+
			" (is the disk attached, and its driver built in or in the initramfs?)")
	}
	var fstype string
	mode := "rw"
	if args.upper != "" {
		if fstype, err = mountOverlayRoot(args); err != nil {
			fatal(onFail, err.Error())
		}
	} else {
		if fstype, err = mountRoot(args); err != nil {
			fatal(onFail, "cannot mount "+args.root+" on "+newRoot+": "+err.Error())
		}
		if args.readOnly {
			mode = "ro"
		}
	}
	var config []configFile
	if args.config != "" {
		if err := waitForDevice(args.config, args.rootWait); err != nil {
			fatal(onFail, "the config disk "+args.config+" did not appear within "+args.rootWait.String())
		}
		if config, err = readConfigDisk(args.config); err != nil {
			fatal(onFail, "cannot read the config disk "+args.config+": "+err.Error())
		}
	}
	initPath, err := findInit(args.init)
	if err != nil {
		fatal(onFail, err.Error())
	}
	moveAPIMounts()
	freeInitramfs()
	// the guest's boot clock at the hand-over: the host times "init started" from this line
	logLine("root " + args.root + " (" + fstype + ", " + mode + ") mounted after " + elapsed() + "; starting " + initPath + " at uptime " + bootSeconds() + "s")
	if err := switchRoot(initPath, config); err != nil {
		fatal(onFail, "cannot start "+initPath+": "+err.Error())
	}
}

// mountAPI mounts what module loading and device discovery need. EBUSY (already mounted, e.g.
// a kernel with DEVTMPFS_MOUNT) is fine.
func mountAPI() {
	for _, m := range []struct{ src, dst, fstype string }{
		{"devtmpfs", "/dev", "devtmpfs"},
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
	} {
		_ = os.Mkdir(m.dst, 0o755)
		err := syscall.Mount(m.src, m.dst, m.fstype, syscall.MS_NOSUID|syscall.MS_NOEXEC, "")
		if err != nil && err != syscall.EBUSY {
			logLine("cannot mount " + m.fstype + " on " + m.dst + ": " + err.Error())
		}
	}
}

// ensureConsole gives PID 1 a console when the kernel could not open one for it (an initramfs
// without /dev/console): devtmpfs has it now.
func ensureConsole() {
	if _, err := syscall.Write(2, nil); err == nil {
		return
	}
	fd, err := syscall.Open("/dev/console", syscall.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return
	}
	for i := 0; i < 3; i++ {
		_ = syscall.Dup3(fd, i, 0)
	}
	if fd > 2 {
		_ = syscall.Close(fd)
	}
}

func loadModules(params map[string][]string) (loaded, present, failed int) {
	text, err := os.ReadFile(modulesList)
	if err != nil {
		if !os.IsNotExist(err) {
			logLine("cannot read " + modulesList + ": " + err.Error())
		}
		return
	}
	for _, path := range readModuleList(string(text)) {
		name := moduleName(path)
		if _, err := os.Stat("/sys/module/" + name + "/initstate"); err == nil {
			present++
			continue
		}
		t0 := time.Now()
		err := finitModule(path, strings.Join(params[name], " "))
		switch {
		case err == nil:
			loaded++
			debugLine("loaded " + name + " in " + time.Since(t0).String())
		case errors.Is(err, syscall.EEXIST):
			present++
		default:
			failed++
			logLine("cannot load module " + name + " (" + path + "): " + err.Error())
		}
	}
	return
}

func finitModule(path, params string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	p, err := syscall.BytePtrFromString(params)
	if err != nil {
		return err
	}
	_, _, errno := syscall.Syscall(sysFinitModule, f.Fd(), uintptr(unsafe.Pointer(p)), 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// waitForDevice polls for the device node: drivers probe asynchronously, and a disk behind a
// module just loaded may take a moment to show up in devtmpfs.
func waitForDevice(path string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	delay := time.Millisecond
	for {
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err == nil && st.Mode&syscall.S_IFMT == syscall.S_IFBLK {
			return nil
		}
		if time.Now().After(deadline) {
			return syscall.ENODEV
		}
		time.Sleep(delay)
		if delay < 50*time.Millisecond {
			delay *= 2
		}
	}
}

func mountRoot(a bootArgs) (string, error) {
	_ = os.Mkdir(newRoot, 0o755)
	return mountDevice(a, a.root, newRoot)
}

// mountDevice mounts dev on dir with the root's rules: the rootfstype= list (else ext4, then
// every block filesystem the kernel has), rootflags=, ro/rw; a device that refuses rw is mounted
// read-only, as the kernel does for its own root.
func mountDevice(a bootArgs, dev, dir string) (string, error) {
	var flags uintptr
	if a.readOnly {
		flags |= syscall.MS_RDONLY
	}
	types := a.fstypes
	if len(types) == 0 {
		types = append([]string{"ext4"}, blockFilesystems()...)
	}
	var errs []string
	tried := map[string]bool{}
	for _, t := range types {
		if tried[t] {
			continue
		}
		tried[t] = true
		err := syscall.Mount(dev, dir, t, flags, a.rootflags)
		if err == nil {
			return t, nil
		}
		errs = append(errs, t+": "+err.Error())
		if err == syscall.EACCES && !a.readOnly {
			// a read-only device (snapshot, write-protected): the kernel retries read-only too
			if err2 := syscall.Mount(dev, dir, t, flags|syscall.MS_RDONLY, a.rootflags); err2 == nil {
				logLine("root device is read-only; mounted it read-only")
				return t, nil
			}
		}
	}
	return "", errors.New("tried " + strings.Join(errs, "; "))
}

// blockFilesystems lists the filesystems of /proc/filesystems that need a device.
func blockFilesystems() []string {
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "nodev") {
			continue
		}
		out = append(out, strings.TrimSpace(line))
	}
	return out
}

func findInit(want string) (string, error) {
	candidates := []string{"/sbin/init", "/etc/init", "/bin/init", "/bin/sh"}
	if want != "" {
		candidates = []string{want}
	}
	for _, c := range candidates {
		// Stat follows symlinks (/sbin/init -> /lib/systemd/systemd), resolved inside the new
		// root only approximately here: an absolute link target is looked up under newRoot.
		if isExecutable(newRoot, c) {
			return c, nil
		}
	}
	if want != "" {
		return "", errors.New("init=" + want + " is not an executable file on the root filesystem")
	}
	return "", errors.New("no init on the root filesystem (tried " + strings.Join(candidates, ", ") + "); set init=")
}

func isExecutable(root, path string) bool {
	for hops := 0; hops < 16; hops++ {
		full := root + path
		var st syscall.Stat_t
		if err := syscall.Lstat(full, &st); err != nil {
			return false
		}
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFREG:
			return st.Mode&0o111 != 0
		case syscall.S_IFLNK:
			target, err := os.Readlink(full)
			if err != nil {
				return false
			}
			if !strings.HasPrefix(target, "/") {
				target = path[:strings.LastIndexByte(path, '/')+1] + target
			}
			path = target
		default:
			return false
		}
	}
	return false
}

// moveAPIMounts moves /dev, /proc and /sys under the new root where it has those directories
// (the image's init then finds them mounted), and detaches them otherwise.
func moveAPIMounts() {
	for _, m := range []string{"/dev", "/proc", "/sys"} {
		var st syscall.Stat_t
		if err := syscall.Stat(newRoot+m, &st); err == nil && st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			if err := syscall.Mount(m, newRoot+m, "", syscall.MS_MOVE, ""); err == nil {
				continue
			} else {
				logLine("cannot move " + m + " to the new root: " + err.Error() + "; detaching it")
			}
		}
		_ = syscall.Unmount(m, syscall.MNT_DETACH)
	}
}

// freeInitramfs deletes the initramfs's files (they stay in RAM otherwise), never crossing into
// another filesystem, and only when "/" is really the initramfs (ramfs or tmpfs).
func freeInitramfs() {
	var fs syscall.Statfs_t
	if err := syscall.Statfs("/", &fs); err != nil || (uint32(fs.Type) != ramfsMagic && uint32(fs.Type) != tmpfsMagic) {
		return
	}
	var root syscall.Stat_t
	if err := syscall.Lstat("/", &root); err != nil {
		return
	}
	removeTree("/", root.Dev)
}

func removeTree(dir string, dev uint64) {
	f, err := os.Open(dir)
	if err != nil {
		return
	}
	names, _ := f.Readdirnames(-1)
	f.Close()
	for _, n := range names {
		p := dir + n
		if dir != "/" {
			p = dir + "/" + n
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil || st.Dev != dev {
			continue
		}
		if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			removeTree(p, dev)
			_ = syscall.Rmdir(p)
			continue
		}
		_ = syscall.Unlink(p)
	}
}

// switchRoot makes the new root "/" and replaces this process with init (PID 1 stays PID 1).
func switchRoot(initPath string, config []configFile) error {
	if err := syscall.Chdir(newRoot); err != nil {
		return err
	}
	if err := syscall.Mount(".", "/", "", syscall.MS_MOVE, ""); err != nil {
		return errors.New("mount --move " + newRoot + " /: " + err.Error())
	}
	if err := syscall.Chroot("."); err != nil {
		return errors.New("chroot: " + err.Error())
	}
	if err := syscall.Chdir("/"); err != nil {
		return err
	}
	if len(config) > 0 {
		hostname, errs := applyConfig(config)
		for _, e := range errs {
			logLine("instance config: " + e)
		}
		if hostname != "" {
			if err := syscall.Sethostname([]byte(hostname)); err != nil {
				logLine("cannot set the hostname: " + err.Error())
			}
		}
		logLine("instance config: " + strconv.Itoa(len(config)-len(errs)) + " of " + strconv.Itoa(len(config)) + " entries applied")
	}
	argv := append([]string{initPath}, os.Args[1:]...)
	return syscall.Exec(initPath, argv, os.Environ())
}

const (
	reboot   = syscall.LINUX_REBOOT_CMD_RESTART
	powerOff = syscall.LINUX_REBOOT_CMD_POWER_OFF
)

// fatal reports why the boot cannot go on and ends the VM. PID 1 must not exit (that is a
// kernel panic, which with panic=0 would hang the guest forever).
func fatal(how int, msg string) {
	logLine("FATAL: " + msg)
	what := "rebooting (ends the VM under QEMU -no-reboot and Firecracker)"
	if how == powerOff {
		what = "powering off"
	}
	logLine(what)
	syscall.Sync()
	if err := syscall.Reboot(how); err != nil {
		logLine("reboot(2) failed: " + err.Error())
	}
	for {
		time.Sleep(time.Hour)
	}
}

// bootSeconds is CLOCK_BOOTTIME ("1.234567"), the clock the kernel's printk times and the
// agent's uptime use.
func bootSeconds() string {
	var ts syscall.Timespec
	const clockBoottime = 7
	if _, _, e := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockBoottime, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		return "?"
	}
	us := ts.Nsec / 1000
	frac := strconv.FormatInt(us, 10)
	for len(frac) < 6 {
		frac = "0" + frac
	}
	return strconv.FormatInt(ts.Sec, 10) + "." + frac
}

func elapsed() string {
	return strconv.FormatInt(time.Since(start).Milliseconds(), 10) + " ms"
}

func logLine(s string) {
	_, _ = os.Stderr.WriteString("rootforge-initrd: " + s + "\n")
}

func debugLine(s string) {
	if debug {
		logLine(s)
	}
}
