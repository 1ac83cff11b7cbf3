package session

import (
	"encoding/binary"
	"testing"
	"time"
)

func TestGarbageFramesGetErrorsAndTheSessionGoesOn(t *testing.T) {
	c := newClient(t, shared(nil))
	for _, body := range []string{"not json", "[]", `{"id":"x","type":"hello"}`, ""} {
		hdr := make([]byte, 4)
		binary.BigEndian.PutUint32(hdr, uint32(len(body)))
		c.sendRaw(append(hdr, body...))
		if m := c.next(0, 5*time.Second); m["type"] != "error" || m["code"] != "BAD_REQUEST" {
			t.Fatal(m)
		}
	}
	c.send(msg{"id": 5, "type": "frobnicate"})
	if m := c.next(5, 5*time.Second); m["code"] != "UNSUPPORTED" {
		t.Fatal(m)
	}
	c.send(msg{"id": 6, "type": "hello"})
	if m := c.next(6, 5*time.Second); m["type"] != "ready" {
		t.Fatal(m)
	}
}

func TestOversizedFrameClosesTheSession(t *testing.T) {
	c := newClient(t, shared(nil))
	c.sendRaw([]byte{0x7f, 0xff, 0xff, 0xff, '{'})
	if m := c.next(0, 5*time.Second); m["code"] != "TOO_LARGE" {
		t.Fatal(m)
	}
	if !c.closed(5 * time.Second) {
		t.Fatal("connection left open after an oversized frame")
	}
}

func TestDuplicateExecIDRejected(t *testing.T) {
	c := newClient(t, shared(nil))
	c.send(msg{"id": 1, "type": "exec", "argv": []string{"sleep", "1"}})
	c.next(1, 5*time.Second) // started
	c.send(msg{"id": 1, "type": "exec", "argv": []string{"true"}})
	if m := c.next(1, 5*time.Second); m["code"] != "BAD_REQUEST" {
		t.Fatal(m)
	}
}

func TestShutdownRequestIsAnsweredFirst(t *testing.T) {
	sh := shared(nil)
	called := make(chan bool, 1)
	sh.Shutdown = func(reboot bool) { called <- reboot }
	c := newClient(t, sh)
	c.send(msg{"id": 1, "type": "shutdown", "reboot": true})
	if m := c.next(1, 5*time.Second); m["type"] != "ok" {
		t.Fatal(m)
	}
	if r := <-called; !r {
		t.Fatal("reboot flag lost")
	}
}

func TestNewHostTokenKillsThePreviousHostsExecs(t *testing.T) {
	c := newClient(t, shared(nil))
	c.send(msg{"id": 1, "type": "hello", "session": "A"})
	c.next(1, 5*time.Second)
	c.send(msg{"id": 2, "type": "exec", "argv": []string{"sleep", "30"}})
	c.next(2, 5*time.Second)                              // started
	c.send(msg{"id": 3, "type": "hello", "session": "A"}) // same host polling again: nothing happens
	c.next(3, 5*time.Second)
	c.send(msg{"id": 4, "type": "hello", "session": "B"})
	c.next(4, 5*time.Second)
	r := c.collect(2, 5*time.Second)
	if r.exit["signal"] != "SIGKILL" {
		t.Fatal(r.exit)
	}
}
