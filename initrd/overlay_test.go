package main

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestReadConfigDisk(t *testing.T) {
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	add := func(h *tar.Header, data string) {
		if err := w.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	add(&tar.Header{Name: "etc/hostname", Mode: 0o644, Size: 3, Typeflag: tar.TypeReg, Format: tar.FormatUSTAR}, "h1\n")
	add(&tar.Header{Name: "root/.ssh/", Mode: 0o700, Typeflag: tar.TypeDir, Format: tar.FormatUSTAR}, "")
	long := "etc/rootforge/" + string(bytes.Repeat([]byte("d"), 90)) + "/instance.json"
	add(&tar.Header{Name: long, Mode: 0o600, Uid: 7, Size: 2, Typeflag: tar.TypeReg, Format: tar.FormatUSTAR}, "{}")
	w.Close()
	disk := append(buf.Bytes(), make([]byte, 4096)...) // a disk is padded with zeros
	p := filepath.Join(t.TempDir(), "config.img")
	if err := os.WriteFile(p, disk, 0o600); err != nil {
		t.Fatal(err)
	}
	files, err := readConfigDisk(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 || files[0].path != "/etc/hostname" || string(files[0].data) != "h1\n" || files[0].mode != 0o644 {
		t.Fatalf("unexpected %+v", files)
	}
	if !files[1].dir || files[1].path != "/root/.ssh" || files[1].mode != 0o700 {
		t.Fatalf("dir %+v", files[1])
	}
	if files[2].path != "/"+long || files[2].uid != 7 || string(files[2].data) != "{}" {
		t.Fatalf("prefixed name %+v", files[2])
	}

	// a corrupted header and a path escaping the root are refused
	bad := append([]byte(nil), disk...)
	bad[0] ^= 0xff
	os.WriteFile(p, bad, 0o600)
	if _, err := readConfigDisk(p); err == nil {
		t.Fatal("bad checksum accepted")
	}
	buf.Reset()
	w = tar.NewWriter(&buf)
	add(&tar.Header{Name: "../../etc/passwd", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg, Format: tar.FormatUSTAR}, "x")
	w.Close()
	os.WriteFile(p, buf.Bytes(), 0o600)
	if _, err := readConfigDisk(p); err == nil {
		t.Fatal("path with .. accepted")
	}
}

func TestOverlayArgs(t *testing.T) {
	a := parseCmdline("root=/dev/vda ro rootforge.upper=/dev/vdb rootforge.config=/dev/vdc")
	if a.upper != "/dev/vdb" || a.config != "/dev/vdc" || !a.readOnly {
		t.Fatalf("unexpected %+v", a)
	}
}
