package session

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"

	"rootforge/agent/internal/proto"
)

// File operations run with the agent's own privileges (root in a VM), like `docker cp`; the
// exec user does not apply. One frame carries at most proto.MaxData bytes: larger files are
// read with offset/length and written with append (see docs/agent-protocol.md).

// errnoCode maps an OS error to a stable protocol code.
func errnoCode(err error) string {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return proto.CodeIO
	}
	switch errno {
	case syscall.ENOENT:
		return proto.CodeENOENT
	case syscall.EACCES:
		return proto.CodeEACCES
	case syscall.EPERM:
		return proto.CodeEPERM
	case syscall.EEXIST:
		return proto.CodeEEXIST
	case syscall.EISDIR:
		return proto.CodeEISDIR
	case syscall.ENOTDIR:
		return proto.CodeENOTDIR
	case syscall.ENOSPC, syscall.EDQUOT:
		return proto.CodeENOSPC
	case syscall.EROFS:
		return proto.CodeEROFS
	}
	return proto.CodeIO
}

// osError builds the error frame for a failed OS call: "Cannot <what>: <reason> (<path>)".
func osError(id int64, what, path string, err error) []byte {
	reason := err.Error()
	var pe *fs.PathError
	if errors.As(err, &pe) {
		reason = pe.Err.Error()
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		reason = le.Err.Error()
	}
	return proto.ErrorFrame(id, errnoCode(err), "Cannot "+what+": "+reason+" ("+path+")")
}

func absPath(r *proto.Request) string {
	p := r.Str("path")
	if r.Err == nil && !filepath.IsAbs(p) {
		r.Fail("path", "must be an absolute path")
	}
	return p
}

// readFile handles {path, offset?, length?} → {type:"file", data, size, mode, eof}.
func readFile(r *proto.Request) []byte {
	path := absPath(r)
	offset := r.Int("offset", 0, 0, 1<<53-1)
	length := r.Int("length", -1, 0, proto.MaxData)
	if r.Err != nil {
		return proto.ErrorFrame(r.ID, proto.CodeBadRequest, r.Err.Error())
	}
	f, err := os.Open(path)
	if err != nil {
		return osError(r.ID, "read file", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return osError(r.ID, "read file", path, err)
	}
	if st.IsDir() {
		return proto.ErrorFrame(r.ID, proto.CodeEISDIR, "Cannot read file: is a directory ("+path+")")
	}
	limit := length
	if limit < 0 {
		// Regular files say their size up front; /proc files say 0 and are read to EOF.
		if st.Mode().IsRegular() && st.Size()-offset > proto.MaxData {
			return tooLarge(r.ID, path, st.Size()-offset)
		}
		limit = proto.MaxData + 1
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			return osError(r.ID, "read file", path, err)
		}
	}
	buf := make([]byte, 0, min64(limit, max64(st.Size()-offset, 0)+512))
	eof := false
	for int64(len(buf)) < limit {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):min64(int64(cap(buf)), limit)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			eof = true
			break
		}
		if err != nil {
			return osError(r.ID, "read file", path, err)
		}
	}
	if length < 0 && int64(len(buf)) > proto.MaxData {
		return tooLarge(r.ID, path, int64(len(buf)))
	}
	size := st.Size()
	end := offset + int64(len(buf))
	if !st.Mode().IsRegular() || end > size {
		size = end // /proc files and devices: their size is what was read
	} else if end >= size {
		eof = true
	}
	fr := proto.NewFrame(r.ID, "file", len(buf)*4/3+64)
	fr.Bytes("data", buf).Int("size", size).Int("mode", modeBits(st.Mode())).Bool("eof", eof)
	return fr.Finish()
}

func tooLarge(id int64, path string, n int64) []byte {
	return proto.ErrorFrame(id, proto.CodeTooLarge, "Cannot read file: "+strconv.FormatInt(n, 10)+" bytes exceed the "+
		strconv.Itoa(proto.MaxData)+"-byte limit of one read; use offset and length ("+path+")")
}

func min64(a, b int64) int64 {
	if a < b {
		return a
	}
	return b
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

var tmpCounter atomic.Int64

// writeFile handles {path, data, mode?, uid?, gid?, append?, mkdirs?} → {type:"ok", size}.
// Without append the file is replaced atomically: written to a temporary file in the same
// directory, synced, then renamed over the path, so a reader sees the old or the new content.
func writeFile(r *proto.Request) []byte {
	path := absPath(r)
	data := r.Data("data")
	mode := r.Int("mode", -1, 0, 0o7777)
	uid := r.Int("uid", -1, 0, 0xfffffffe)
	gid := r.Int("gid", -1, 0, 0xfffffffe)
	appendMode := r.Bool("append")
	mkdirs := r.Bool("mkdirs")
	if r.Err != nil {
		return proto.ErrorFrame(r.ID, proto.CodeBadRequest, r.Err.Error())
	}
	if mkdirs {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return osError(r.ID, "create parent directories", filepath.Dir(path), err)
		}
	}
	// Write through a symlink to its target (e.g. /etc/resolv.conf -> ../run/...), as a
	// shell redirect would, instead of replacing the link.
	if target, err := filepath.EvalSymlinks(path); err == nil {
		path = target
	}
	var err error
	if appendMode {
		err = appendTo(path, data, mode, uid, gid)
	} else {
		err = replace(path, data, mode, uid, gid)
	}
	if err != nil {
		return osError(r.ID, "write file", path, err)
	}
	f := proto.NewFrame(r.ID, "ok", 0)
	f.Int("size", int64(len(data)))
	return f.Finish()
}

// fileMode turns protocol mode bits (07777) into os.FileMode bits.
func fileMode(m int64) os.FileMode {
	out := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		out |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= os.ModeSticky
	}
	return out
}

// modeBits is the inverse of fileMode: os.FileMode to the 07777 bits of stat(2).
func modeBits(m os.FileMode) int64 {
	out := int64(m.Perm())
	if m&os.ModeSetuid != 0 {
		out |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		out |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		out |= 0o1000
	}
	return out
}

func appendTo(path string, data []byte, mode, uid, gid int64) error {
	perm := os.FileMode(0o644)
	if mode >= 0 {
		perm = fileMode(mode)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	// chown before chmod: chown clears setuid/setgid bits.
	if err == nil && (uid >= 0 || gid >= 0) {
		err = f.Chown(int(uid), int(gid))
	}
	if err == nil && mode >= 0 {
		err = f.Chmod(fileMode(mode)) // umask-independent, and applies to an existing file too
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func replace(path string, data []byte, mode, uid, gid int64) error {
	perm := os.FileMode(0o644)
	if old, err := os.Stat(path); err == nil {
		if old.IsDir() {
			return &fs.PathError{Op: "write", Path: path, Err: syscall.EISDIR}
		}
		// Keep what the old file had unless the request says otherwise.
		perm = old.Mode() & (fs.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
		if st, ok := old.Sys().(*syscall.Stat_t); ok {
			if uid < 0 && gid < 0 && (int(st.Uid) != os.Geteuid() || int(st.Gid) != os.Getegid()) {
				uid, gid = int64(st.Uid), int64(st.Gid)
			}
		}
	}
	if mode >= 0 {
		perm = fileMode(mode)
	}
	dir, base := filepath.Split(path)
	tmp := filepath.Join(dir, "."+base+".rootforge-"+strconv.Itoa(os.Getpid())+"-"+strconv.FormatInt(tmpCounter.Add(1), 10)+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && (uid >= 0 || gid >= 0) {
		err = f.Chown(int(uid), int(gid)) // before chmod: chown clears setuid/setgid bits
	}
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		if rerr := os.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return errors.New(err.Error() + "; and removing the temporary file failed: " + rerr.Error())
		}
	}
	return err
}
