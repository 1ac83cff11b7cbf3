package main

// Sandbox instances (rootforge instance create / boot DIR): the root becomes an overlay before
// the image's init runs, whatever that init is (the agent as PID 1, the wrapper, systemd,
// OpenRC), because it is done here, in the initramfs:
//
//	root=/dev/vda ro                 the base image, mounted read-only on /lower (never written)
//	rootforge.upper=/dev/vdb         the instance disk (ext4 with /upper and /work), on /upper;
//	                                 grown online to the device's size when the device grew
//	                                 (rootforge instance resize)
//	overlay lowerdir=/lower,upperdir=/upper/upper,workdir=/upper/work  on /root
//	rootforge.config=/dev/vdc        a read-only disk holding a ustar archive of the instance's
//	                                 files (hostname, machine-id, authorized_keys, session env,
//	                                 instance.json), written into the new root after the switch
//
// Secrets (the session env) travel on the config disk, never on the kernel command line, which
// every process in the guest can read.

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

const (
	lowerDir = "/lower"
	upperDir = "/upper"
	// ioctls (asm-generic numbering, the same on amd64 and arm64)
	blkGetSize64  = 0x80081272 // BLKGETSIZE64: device size in bytes
	ext4ResizeFS  = 0x40086610 // EXT4_IOC_RESIZE_FS: grow a mounted ext4 to N blocks
	maxConfigSize = 16 << 20
)

// mountOverlayRoot mounts base, instance disk and the overlay on newRoot.
func mountOverlayRoot(a bootArgs) (string, error) {
	for _, d := range []string{lowerDir, upperDir, newRoot} {
		_ = os.Mkdir(d, 0o755)
	}
	ro := a
	ro.readOnly = true
	fstype, err := mountDevice(ro, a.root, lowerDir)
	if err != nil {
		return "", errors.New("cannot mount the base " + a.root + " on " + lowerDir + ": " + err.Error())
	}
	if err := waitForDevice(a.upper, a.rootWait); err != nil {
		return "", errors.New("the instance disk " + a.upper + " did not appear within " + a.rootWait.String())
	}
	if err := syscall.Mount(a.upper, upperDir, "ext4", 0, ""); err != nil {
		return "", errors.New("cannot mount the instance disk " + a.upper + " on " + upperDir + ": " + err.Error())
	}
	if grown, err := growToDevice(a.upper, upperDir); err != nil {
		logLine("cannot grow the instance disk's filesystem: " + err.Error() + " (it keeps its size)")
	} else if grown != "" {
		logLine("instance disk grown to " + grown)
	}
	for _, d := range []string{upperDir + "/upper", upperDir + "/work"} {
		if err := os.Mkdir(d, 0o755); err != nil && !os.IsExist(err) {
			return "", errors.New("cannot create " + d + ": " + err.Error())
		}
	}
	opts := "lowerdir=" + lowerDir + ",upperdir=" + upperDir + "/upper,workdir=" + upperDir + "/work"
	if err := syscall.Mount("overlay", newRoot, "overlay", 0, opts); err != nil {
		hint := ""
		if err == syscall.ENODEV {
			hint = " (no overlay filesystem: is the overlay module in the initramfs? rebuild the kernel with `rootforge kernel from-deb`)"
		}
		return "", errors.New("cannot mount the overlay root: " + err.Error() + hint)
	}
	return "overlay of " + fstype, nil
}

// growToDevice grows the ext4 mounted on dir to the size of dev when dev is larger (online
// resize: the kernel adds block groups to the mounted filesystem). Returns the new size.
func growToDevice(dev, dir string) (string, error) {
	f, err := os.Open(dev)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var devBytes uint64
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), blkGetSize64, uintptr(unsafe.Pointer(&devBytes))); e != 0 {
		return "", errors.New("BLKGETSIZE64: " + e.Error())
	}
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, 1024); err != nil {
		return "", err
	}
	logBlock := le32(sb, 0x18)
	blockSize := uint64(1024) << logBlock
	blocks := uint64(le32(sb, 0x04))
	if le32(sb, 0x60)&0x80 != 0 { // INCOMPAT_64BIT
		blocks |= uint64(le32(sb, 0x150)) << 32
	}
	want := devBytes / blockSize
	if want <= blocks {
		return "", nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return "", err
	}
	defer d.Close()
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, d.Fd(), ext4ResizeFS, uintptr(unsafe.Pointer(&want))); e != 0 {
		return "", errors.New("EXT4_IOC_RESIZE_FS from " + strconv.FormatUint(blocks, 10) + " to " + strconv.FormatUint(want, 10) + " blocks: " + e.Error())
	}
	return strconv.FormatUint(want*blockSize>>20, 10) + " MiB", nil
}

func le32(b []byte, off int) uint32 {
	return uint32(b[off]) | uint32(b[off+1])<<8 | uint32(b[off+2])<<16 | uint32(b[off+3])<<24
}

// configFile is one member of the config disk's archive.
type configFile struct {
	path     string // relative, no ".." (checked)
	dir      bool
	mode     uint32
	uid, gid int
	data     []byte
}

// readConfigDisk reads the ustar archive at the start of dev (it ends at the first zero block).
func readConfigDisk(dev string) ([]configFile, error) {
	f, err := os.Open(dev)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []configFile
	var off int64
	hdr := make([]byte, 512)
	for off < maxConfigSize {
		if _, err := f.ReadAt(hdr, off); err != nil {
			return nil, errors.New("truncated archive at byte " + strconv.FormatInt(off, 10))
		}
		off += 512
		if allZero(hdr) {
			return out, nil
		}
		if !validChecksum(hdr) {
			return nil, errors.New("bad header checksum at byte " + strconv.FormatInt(off-512, 10))
		}
		name := cstr(hdr[0:100])
		if prefix := cstr(hdr[345:500]); prefix != "" {
			name = prefix + "/" + name
		}
		size, err1 := octal(hdr[124:136])
		mode, err2 := octal(hdr[100:108])
		uid, err3 := octal(hdr[108:116])
		gid, err4 := octal(hdr[116:124])
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil || size > maxConfigSize {
			return nil, errors.New("bad header fields for " + strconv.Quote(name))
		}
		clean, ok := safePath(name)
		if !ok {
			return nil, errors.New("unsafe path " + strconv.Quote(name))
		}
		cf := configFile{path: clean, mode: uint32(mode) & 0o7777, uid: int(uid), gid: int(gid)}
		switch hdr[156] {
		case '5':
			cf.dir = true
		case '0', 0:
			cf.data = make([]byte, size)
			if _, err := f.ReadAt(cf.data, off); err != nil {
				return nil, errors.New("truncated data for " + strconv.Quote(name))
			}
		default:
			return nil, errors.New("unsupported entry type for " + strconv.Quote(name))
		}
		off += (size + 511) / 512 * 512
		out = append(out, cf)
	}
	return nil, errors.New("archive larger than " + strconv.Itoa(maxConfigSize) + " bytes")
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func validChecksum(h []byte) bool {
	want, err := octal(h[148:156])
	if err != nil {
		return false
	}
	var sum int64
	for i, c := range h {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int64(c)
	}
	return sum == want
}

func cstr(b []byte) string {
	if i := indexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func octal(b []byte) (int64, error) {
	s := strings.TrimRight(strings.TrimSpace(cstr(b)), " ")
	if s == "" {
		return 0, nil
	}
	return strconv.ParseInt(s, 8, 64)
}

// safePath normalizes an archive path; "..", absolute escapes and empty names are refused.
func safePath(p string) (string, bool) {
	var parts []string
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			return "", false
		}
		parts = append(parts, c)
	}
	if len(parts) == 0 {
		return "", false
	}
	return "/" + strings.Join(parts, "/"), true
}

// applyConfig writes the config files into "/" (called after the switch to the new root, so
// absolute symlinks in the image resolve inside it). A file that is a symlink in the image is
// replaced, never followed (/etc/machine-id → /run/... would otherwise be written elsewhere).
// Files are written to a temporary name and renamed: a crash leaves the old or the new one.
func applyConfig(files []configFile) (hostname string, errs []string) {
	for _, f := range files {
		if f.dir {
			if err := os.MkdirAll(f.path, os.FileMode(f.mode&0o777)); err != nil {
				errs = append(errs, f.path+": "+err.Error())
				continue
			}
		} else {
			if err := writeConfigFile(f); err != nil {
				errs = append(errs, f.path+": "+err.Error())
				continue
			}
			if f.path == "/etc/hostname" {
				hostname = strings.TrimSpace(strings.SplitN(string(f.data), "\n", 2)[0])
			}
		}
		if err := syscall.Chmod(f.path, f.mode); err != nil {
			errs = append(errs, f.path+": "+err.Error())
		}
		if err := syscall.Lchown(f.path, f.uid, f.gid); err != nil {
			errs = append(errs, f.path+": "+err.Error())
		}
	}
	return hostname, errs
}

func writeConfigFile(f configFile) error {
	dir := f.path[:strings.LastIndexByte(f.path, '/')+1]
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp := dir + ".rootforge-config.tmp"
	_ = os.Remove(tmp)
	fd, err := syscall.Open(tmp, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, f.mode&0o777)
	if err != nil {
		return err
	}
	file := os.NewFile(uintptr(fd), tmp)
	_, werr := file.Write(f.data)
	serr := file.Sync()
	cerr := file.Close()
	for _, e := range []error{werr, serr, cerr} {
		if e != nil {
			_ = os.Remove(tmp)
			return e
		}
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(f.path, &st); err == nil && st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		_ = os.Remove(tmp)
		return errors.New("is a directory in the image")
	}
	return os.Rename(tmp, f.path) // rename replaces a symlink itself, never its target
}
