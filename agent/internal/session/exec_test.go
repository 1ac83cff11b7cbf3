package session

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"rootforge/agent/internal/config"
)

func deterministic(n int, seed uint32) []byte {
	b := make([]byte, n)
	x := seed
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func TestExitCodesAndStreamsKeptApart(t *testing.T) {
	c := newClient(t, shared(nil))
	r := c.run(1, msg{"argv": []string{"sh", "-c", "echo out; echo err >&2; exit 7"}}, 10*time.Second)
	if string(r.stdout) != "out\n" || string(r.stderr) != "err\n" || r.exit["code"] != 7.0 || r.exit["signal"] != nil || r.exit["timedOut"] != false {
		t.Fatalf("%q %q %v", r.stdout, r.stderr, r.exit)
	}
	r = c.run(2, msg{"argv": []string{"true"}}, 10*time.Second)
	if r.exit["code"] != 0.0 || r.pid <= 0 {
		t.Fatalf("%v pid %d", r.exit, r.pid)
	}
}

func TestBigOutputsArriveWhole(t *testing.T) {
	dir := t.TempDir()
	out, errOut := deterministic(20_000_000, 1), deterministic(3_000_000, 2)
	for name, data := range map[string][]byte{"out": out, "err": errOut} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := newClient(t, shared(nil))
	// Both streams written at once, so their frames interleave on the wire.
	r := c.run(1, msg{"argv": []string{"sh", "-c", "cat out & cat err >&2; wait"}, "cwd": dir}, 60*time.Second)
	if sha256.Sum256(r.stdout) != sha256.Sum256(out) || sha256.Sum256(r.stderr) != sha256.Sum256(errOut) {
		t.Fatalf("output damaged: %d/%d and %d/%d bytes", len(r.stdout), len(out), len(r.stderr), len(errOut))
	}
}

func TestStdinStreaming(t *testing.T) {
	c := newClient(t, shared(nil))
	c.send(msg{"id": 1, "type": "exec", "argv": []string{"cat"}, "stdin": true})
	if m := c.next(1, 5*time.Second); m["type"] != "started" {
		t.Fatal(m)
	}
	data := deterministic(5<<20, 3)
	go func() {
		for off := 0; off < len(data); off += 100_000 {
			end := off + 100_000
			if end > len(data) {
				end = len(data)
			}
			c.send(msg{"id": 1, "type": "stdin", "data": enc(data[off:end])})
		}
		c.send(msg{"id": 1, "type": "stdin", "eof": true})
	}()
	r := c.collect(1, 30*time.Second)
	if !bytes.Equal(r.stdout, data) || r.exit["code"] != 0.0 {
		t.Fatalf("%d of %d bytes back, exit %v", len(r.stdout), len(data), r.exit)
	}
	// stdin for an exec that is gone is dropped without an answer; the session goes on.
	c.send(msg{"id": 1, "type": "stdin", "data": enc([]byte("late"))})
	c.send(msg{"id": 2, "type": "hello"})
	if m := c.next(2, 5*time.Second); m["type"] != "ready" {
		t.Fatal(m)
	}
}

func TestStdinClosedWithoutData(t *testing.T) {
	c := newClient(t, shared(nil))
	c.send(msg{"id": 1, "type": "exec", "argv": []string{"wc", "-c"}, "stdin": true})
	c.send(msg{"id": 1, "type": "stdin", "eof": true})
	r := c.collect(1, 10*time.Second)
	if strings.TrimSpace(string(r.stdout)) != "0" {
		t.Fatalf("%q %v", r.stdout, r.exit)
	}
	// Without stdin: true the process reads EOF at once instead of hanging.
	r = c.run(2, msg{"argv": []string{"cat"}}, 10*time.Second)
	if r.exit["code"] != 0.0 || len(r.stdout) != 0 {
		t.Fatal(r.exit)
	}
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

func TestTimeoutKillsTheProcessGroup(t *testing.T) {
	dir := t.TempDir()
	c := newClient(t, shared(nil))
	start := time.Now()
	r := c.run(1, msg{"argv": []string{"sh", "-c", "sleep 30 & echo $! > bg; sleep 30"}, "cwd": dir, "timeoutMs": 300}, 10*time.Second)
	el := time.Since(start)
	if r.exit["timedOut"] != true || r.exit["signal"] != "SIGKILL" || r.exit["code"] != nil {
		t.Fatal(r.exit)
	}
	if el < 300*time.Millisecond || el > 3*time.Second {
		t.Fatalf("took %v", el)
	}
	b, err := os.ReadFile(filepath.Join(dir, "bg"))
	if err != nil {
		t.Fatal(err)
	}
	bg, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(2 * time.Second)
	for alive(bg) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(bg) {
		t.Fatalf("background child %d survived the timeout", bg)
	}
}

func TestBackgroundChildHoldingStdoutDoesNotBlockExit(t *testing.T) {
	c := newClient(t, shared(nil))
	start := time.Now()
	r := c.run(1, msg{"argv": []string{"sh", "-c", "echo before; sleep 5 &"}}, 10*time.Second)
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("exit waited %v for a background child", el)
	}
	if string(r.stdout) != "before\n" || r.exit["code"] != 0.0 {
		t.Fatal(r.exit)
	}
}

func TestSignal(t *testing.T) {
	c := newClient(t, shared(nil))
	c.send(msg{"id": 1, "type": "exec", "argv": []string{"sleep", "30"}})
	if m := c.next(1, 5*time.Second); m["type"] != "started" {
		t.Fatal(m)
	}
	c.send(msg{"id": 2, "type": "signal", "target": 1, "signal": "TERM"})
	if m := c.next(2, 5*time.Second); m["type"] != "ok" {
		t.Fatal(m)
	}
	r := c.collect(1, 5*time.Second)
	if r.exit["signal"] != "SIGTERM" || r.exit["timedOut"] != false {
		t.Fatal(r.exit)
	}
	c.send(msg{"id": 3, "type": "signal", "target": 1, "signal": 9})
	if m := c.next(3, 5*time.Second); m["code"] != "NOT_RUNNING" {
		t.Fatal(m)
	}
	c.send(msg{"id": 4, "type": "signal", "target": 1, "signal": "SIGNOPE"})
	if m := c.next(4, 5*time.Second); m["code"] != "BAD_REQUEST" {
		t.Fatal(m)
	}
}

func TestEnvCwdAndUser(t *testing.T) {
	img := &config.Image{Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin", "FOO=image", "BAR=image"}, WorkingDir: "/"}
	sh := shared(img)
	sh.Cfg.Env = map[string]string{"AGENT": "yes"}
	c := newClient(t, sh)
	dir := t.TempDir()
	r := c.run(1, msg{"argv": []string{"sh", "-c", `echo "$FOO $BAR $AGENT"; pwd`}, "env": msg{"BAR": "request"}, "cwd": dir}, 10*time.Second)
	if string(r.stdout) != "image request yes\n"+dir+"\n" {
		t.Fatalf("%q", r.stdout)
	}
	r = c.run(2, msg{"argv": []string{"/usr/bin/env"}, "env": msg{"ONLY": "this"}, "clearEnv": true}, 10*time.Second)
	if string(r.stdout) != "ONLY=this\n" {
		t.Fatalf("clearEnv: %q", r.stdout)
	}
	r = c.run(3, msg{"argv": []string{"pwd"}, "cwd": "sub"}, 10*time.Second)
	if r.err == nil || r.err["code"] != "EXEC_FAILED" || !strings.Contains(r.err["message"].(string), "working directory") {
		t.Fatalf("relative cwd under a missing default dir: %v", r.err)
	}
	r = c.run(4, msg{"argv": []string{"no-such-program-xyz"}}, 10*time.Second)
	if r.err == nil || r.err["code"] != "EXEC_FAILED" || !strings.Contains(r.err["message"].(string), "not found in PATH") {
		t.Fatal(r.err)
	}
	r = c.run(5, msg{"argv": []string{}}, 10*time.Second)
	if r.err == nil || r.err["code"] != "BAD_REQUEST" {
		t.Fatal(r.err)
	}
	if os.Geteuid() != 0 {
		t.Log("not root: uid switching not tested")
		return
	}
	r = c.run(6, msg{"argv": []string{"sh", "-c", "id -u; id -g"}, "uid": 65534, "gid": 65533, "cwd": "/"}, 10*time.Second)
	if string(r.stdout) != "65534\n65533\n" {
		t.Fatalf("uid/gid: %q %v", r.stdout, r.err)
	}
}

func TestConcurrentExecs(t *testing.T) {
	c := newClient(t, shared(nil))
	for i := int64(1); i <= 8; i++ {
		c.send(msg{"id": i, "type": "exec", "argv": []string{"sh", "-c", "sleep 0.2; echo " + strconv.FormatInt(i, 10)}})
	}
	start := time.Now()
	for i := int64(1); i <= 8; i++ {
		r := c.collect(i, 10*time.Second)
		if string(r.stdout) != strconv.FormatInt(i, 10)+"\n" {
			t.Fatalf("exec %d: %q", i, r.stdout)
		}
	}
	if el := time.Since(start); el > 1500*time.Millisecond {
		t.Fatalf("8 × 0.2 s took %v: not concurrent", el)
	}
}

func TestSessionEndKillsExecs(t *testing.T) {
	c := newClient(t, shared(nil))
	c.send(msg{"id": 1, "type": "exec", "argv": []string{"sleep", "30"}})
	m := c.next(1, 5*time.Second)
	pid := int(m["pid"].(float64))
	c.conn.Close()
	deadline := time.Now().Add(3 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(pid) {
		t.Fatal("exec survived its session")
	}
	if err := syscall.Kill(pid, 0); err == nil && alive(pid) {
		t.Fatal("still there")
	}
}
