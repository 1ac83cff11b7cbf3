package session

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"rootforge/agent/internal/proto"
)

func TestWriteReadRoundTrip(t *testing.T) {
	c := newClient(t, shared(nil))
	dir := t.TempDir()
	path := filepath.Join(dir, "a", "b", "data.bin")
	data := deterministic(300_000, 9)
	data[0], data[1] = 0, 0xff
	c.send(msg{"id": 1, "type": "write_file", "path": path, "data": enc(data), "mode": 0o640, "mkdirs": true})
	if m := c.next(1, 5*time.Second); m["type"] != "ok" || m["size"] != 300000.0 {
		t.Fatal(m)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o640 {
		t.Fatal(st.Mode(), err)
	}
	c.send(msg{"id": 2, "type": "read_file", "path": path})
	m := c.next(2, 5*time.Second)
	if m["type"] != "file" || !bytes.Equal(b64(t, m["data"]), data) || m["mode"] != float64(0o640) || m["size"] != 300000.0 || m["eof"] != true {
		t.Fatalf("%v %v %v", m["type"], m["mode"], m["size"])
	}
	c.send(msg{"id": 3, "type": "read_file", "path": path, "offset": 1000, "length": 10})
	m = c.next(3, 5*time.Second)
	if !bytes.Equal(b64(t, m["data"]), data[1000:1010]) || m["eof"] != false {
		t.Fatal(m)
	}
	// Replacing keeps the mode; append adds; no temporary files are left behind.
	c.send(msg{"id": 4, "type": "write_file", "path": path, "data": enc([]byte("new"))})
	c.next(4, 5*time.Second)
	c.send(msg{"id": 5, "type": "write_file", "path": path, "data": enc([]byte("+more")), "append": true})
	c.next(5, 5*time.Second)
	got, _ := os.ReadFile(path)
	st, _ = os.Stat(path)
	if string(got) != "new+more" || st.Mode().Perm() != 0o640 {
		t.Fatalf("%q %v", got, st.Mode())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("leftovers: %v", entries)
	}
	if os.Geteuid() == 0 {
		c.send(msg{"id": 6, "type": "write_file", "path": path, "data": "", "uid": 1234, "gid": 5678, "mode": 0o4755})
		c.next(6, 5*time.Second)
		st, _ = os.Stat(path)
		sys := st.Sys().(*syscall.Stat_t)
		if sys.Uid != 1234 || sys.Gid != 5678 || st.Mode()&os.ModeSetuid == 0 || st.Size() != 0 {
			t.Fatalf("owner %d:%d mode %v", sys.Uid, sys.Gid, st.Mode())
		}
	}
}

func TestWriteThroughSymlink(t *testing.T) {
	c := newClient(t, shared(nil))
	dir := t.TempDir()
	if err := os.Symlink("target", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "target"), []byte("old"), 0o600)
	c.send(msg{"id": 1, "type": "write_file", "path": filepath.Join(dir, "link"), "data": enc([]byte("new"))})
	c.next(1, 5*time.Second)
	if fi, err := os.Lstat(filepath.Join(dir, "link")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatal("symlink replaced")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "target")); string(b) != "new" {
		t.Fatal(string(b))
	}
}

func TestFileErrors(t *testing.T) {
	c := newClient(t, shared(nil))
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	f, _ := os.Create(big)
	f.Truncate(proto.MaxData + 1) // sparse: no need to write it
	f.Close()
	cases := []struct {
		req  msg
		code string
	}{
		{msg{"type": "read_file", "path": filepath.Join(dir, "missing")}, "ENOENT"},
		{msg{"type": "read_file", "path": dir}, "EISDIR"},
		{msg{"type": "read_file", "path": big}, "TOO_LARGE"},
		{msg{"type": "read_file", "path": "relative"}, "BAD_REQUEST"},
		{msg{"type": "read_file", "path": big, "length": proto.MaxData + 1}, "BAD_REQUEST"},
		{msg{"type": "write_file", "path": filepath.Join(dir, "no", "parent"), "data": ""}, "ENOENT"},
		{msg{"type": "write_file", "path": dir, "data": ""}, "EISDIR"},
		{msg{"type": "write_file", "path": filepath.Join(dir, "x"), "data": "!!notbase64"}, "BAD_REQUEST"},
		{msg{"type": "write_file", "path": filepath.Join(dir, "x"), "data": "", "mode": 0o10000}, "BAD_REQUEST"},
	}
	for i, cs := range cases {
		id := int64(i + 1)
		cs.req["id"] = id
		c.send(cs.req)
		m := c.next(id, 5*time.Second)
		if m["type"] != "error" || m["code"] != cs.code {
			t.Errorf("%v: got %v", cs.req, m)
		}
		if msg, _ := m["message"].(string); len(msg) < 8 || msg[:7] != "Cannot " {
			t.Errorf("message %q", msg)
		}
	}
	// A large file in parts, and a /proc file whose stat size is 0.
	c.send(msg{"id": 100, "type": "read_file", "path": big, "offset": proto.MaxData - 5, "length": 100})
	if m := c.next(100, 5*time.Second); len(b64(t, m["data"])) != 6 || m["eof"] != true {
		t.Fatal(m)
	}
	c.send(msg{"id": 101, "type": "read_file", "path": "/proc/self/status"})
	if m := c.next(101, 5*time.Second); !bytes.Contains(b64(t, m["data"]), []byte("Pid:")) {
		t.Fatal(m)
	}
}
