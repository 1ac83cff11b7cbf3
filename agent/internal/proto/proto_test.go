package proto

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func frame(body string) []byte {
	b := make([]byte, 4, 4+len(body))
	binary.BigEndian.PutUint32(b, uint32(len(body)))
	return append(b, body...)
}

func TestReadFrameAcrossPartialReads(t *testing.T) {
	var stream []byte
	bodies := []string{`{"id":1,"type":"hello"}`, `{}`, `{"id":2,"type":"exec","argv":["true"]}`}
	for _, b := range bodies {
		stream = append(stream, frame(b)...)
	}
	// One byte per read: lengths and bodies split everywhere.
	r := bufio.NewReaderSize(iotest.OneByteReader(bytes.NewReader(stream)), 16)
	for _, want := range bodies {
		got, err := ReadFrame(r)
		if err != nil || string(got) != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
	}
	if _, err := ReadFrame(r); err != io.EOF {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
}

func TestReadFrameTruncatedAndOversized(t *testing.T) {
	f := frame(`{"id":1,"type":"hello"}`)
	for cut := 1; cut < len(f); cut++ {
		_, err := ReadFrame(bufio.NewReader(bytes.NewReader(f[:cut])))
		if err != ErrTruncated {
			t.Fatalf("cut at %d: %v, want ErrTruncated", cut, err)
		}
	}
	huge := []byte{0xff, 0xff, 0xff, 0xff, 'x'}
	_, err := ReadFrame(bufio.NewReader(bytes.NewReader(huge)))
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Size != 0xffffffff {
		t.Fatalf("got %v, want TooLargeError", err)
	}
	// Exactly MaxFrame is allowed (only the header is read before the body).
	hdr := make([]byte, 4)
	binary.BigEndian.PutUint32(hdr, MaxFrame)
	if _, err := ReadFrame(bufio.NewReader(bytes.NewReader(hdr))); err != ErrTruncated {
		t.Fatalf("MaxFrame header: %v, want ErrTruncated", err)
	}
}

func TestDecodeValidates(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{`not json`, "Cannot parse request: invalid JSON"},
		{`[1]`, "not a JSON object"},
		{`{"type":"hello"}`, "id must be"},
		{`{"id":-1,"type":"hello"}`, "id must be"},
		{`{"id":1.5,"type":"hello"}`, "id must be"},
		{`{"id":1e300,"type":"hello"}`, "id must be"},
		{`{"id":3,"type":7}`, "type must be"},
	} {
		_, err := Decode([]byte(c.body))
		var br *BadRequest
		if !errors.As(err, &br) || !bytes.Contains([]byte(err.Error()), []byte(c.want)) {
			t.Errorf("%s: got %v, want %q", c.body, err, c.want)
		}
	}
	r, err := Decode([]byte(`{"id":3,"type":"exec","argv":"sh"}`))
	if err != nil || r.ID != 3 {
		t.Fatal(err)
	}
	r.Strings("argv")
	if r.Err == nil {
		t.Fatal("argv as a string was accepted")
	}
}

func TestAccessors(t *testing.T) {
	r, err := Decode([]byte(`{"id":9,"type":"x","s":"v","n":5,"b":true,"l":["a"],"m":{"k":"v"},"d":"AAE="}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Str("s") != "v" || r.Int("n", 0, 0, 10) != 5 || !r.Bool("b") || r.Strings("l")[0] != "a" ||
		r.StringMap("m")["k"] != "v" || !bytes.Equal(r.Data("d"), []byte{0, 1}) || r.Err != nil {
		t.Fatalf("accessors: %v", r.Err)
	}
	if r.Int("missing", 7, 0, 10) != 7 || r.Str("missing") != "" || r.Err != nil {
		t.Fatal("defaults")
	}
	r.Int("n", 0, 0, 4)
	if r.Err == nil {
		t.Fatal("out of range accepted")
	}
}

func TestEncodedFramesAreJSON(t *testing.T) {
	for _, f := range [][]byte{ErrorFrame(4, CodeENOENT, "Cannot x: y (\"z\")"), OK(5), Output(6, "stdout", []byte("hi\x00"))} {
		n := binary.BigEndian.Uint32(f)
		if int(n) != len(f)-4 {
			t.Fatalf("length %d for %d bytes", n, len(f)-4)
		}
		var m map[string]any
		if err := json.Unmarshal(f[4:], &m); err != nil {
			t.Fatalf("%s: %v", f[4:], err)
		}
		if m["id"] == nil || m["type"] == nil {
			t.Fatalf("missing id/type: %v", m)
		}
	}
}
