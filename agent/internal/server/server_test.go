package server

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"rootforge/agent/internal/config"
	"rootforge/agent/internal/sys"
)

// startServer runs a Server listening on a Unix socket in a temp dir, in service mode (not PID 1),
// with the real Linux system calls: execs run real processes.
func startServer(t *testing.T) (sock string, stop func() Stop) {
	t.Helper()
	sock = filepath.Join(t.TempDir(), "agent.sock")
	srv := New(Options{Version: "test", Cfg: config.Defaults(), Img: &config.Image{}, Sys: sys.Linux{}, Listen: []string{"unix:" + sock}})
	stopped := make(chan Stop, 1)
	go func() { stopped <- srv.Run() }()
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return sock, func() Stop {
		srv.requestStop(Stop{Reason: "test over"})
		select {
		case st := <-stopped:
			return st
		case <-time.After(10 * time.Second):
			t.Fatal("the server did not stop within 10 s")
			return Stop{}
		}
	}
}

type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, sock string) *client {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatalf("dial %s: %v", sock, err)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return &client{t: t, conn: c, r: bufio.NewReader(c)}
}

func (c *client) send(v map[string]any) {
	body, _ := json.Marshal(v)
	b := make([]byte, 4, 4+len(body))
	binary.BigEndian.PutUint32(b, uint32(len(body)))
	if _, err := c.conn.Write(append(b, body...)); err != nil {
		c.t.Errorf("write: %v", err)
	}
}

func (c *client) recv() map[string]any {
	var n [4]byte
	if _, err := io.ReadFull(c.r, n[:]); err != nil {
		c.t.Errorf("read length: %v", err)
		return nil
	}
	body := make([]byte, binary.BigEndian.Uint32(n[:]))
	if _, err := io.ReadFull(c.r, body); err != nil {
		c.t.Errorf("read body: %v", err)
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		c.t.Errorf("frame %q: %v", body, err)
	}
	return m
}

// recvID returns the next frame with this id (the unsolicited ready greeting, id 0, is skipped
// when another id is wanted).
func (c *client) recvID(id int) map[string]any {
	for i := 0; i < 100; i++ {
		m := c.recv()
		if m == nil || m["id"] == float64(id) {
			return m
		}
	}
	c.t.Errorf("no frame with id %d in 100 frames", id)
	return nil
}

// runExec sends an exec and collects its stdout and exit code.
func (c *client) runExec(id int, argv ...string) (string, int) {
	c.send(map[string]any{"id": id, "type": "exec", "argv": argv})
	out := ""
	for {
		m := c.recv()
		if m == nil {
			return out, -1
		}
		if int(m["id"].(float64)) != id {
			continue
		}
		switch m["type"] {
		case "stdout":
			d, _ := m["data"].(string)
			out += decodeB64(c.t, d)
		case "exit":
			return out, int(m["code"].(float64))
		case "error":
			c.t.Errorf("exec %v: %v", argv, m)
			return out, -1
		}
	}
}

// TestConcurrentSessions: several hosts connected at once, each running execs. Under `go test
// -race` this catches writes to state that all sessions share.
func TestConcurrentSessions(t *testing.T) {
	sock, stop := startServer(t)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := dial(t, sock)
			defer c.conn.Close()
			c.send(map[string]any{"id": 1, "type": "hello", "session": "s" + strconv.Itoa(i)})
			if m := c.recvID(1); m == nil || m["type"] != "ready" || m["protocol"] != float64(ProtocolVersion) {
				t.Errorf("session %d: want a ready frame with protocol %d, got %v", i, ProtocolVersion, m)
				return
			}
			for j := 0; j < 3; j++ {
				word := "s" + strconv.Itoa(i) + "-" + strconv.Itoa(j)
				out, code := c.runExec(10+j, "/bin/echo", word)
				if code != 0 || out != word+"\n" {
					t.Errorf("session %d exec %d: got %q exit %d", i, j, out, code)
				}
			}
		}(i)
	}
	wg.Wait()
	if st := stop(); st.Reason != "test over" || st.Requested {
		t.Fatalf("stop: %+v", st)
	}
}

// TestShutdownRequest: a shutdown request is answered, then stops the server as requested.
func TestShutdownRequest(t *testing.T) {
	sock, stop := startServer(t)
	c := dial(t, sock)
	defer c.conn.Close()
	c.send(map[string]any{"id": 1, "type": "hello"})
	if m := c.recvID(1); m == nil || m["type"] != "ready" {
		t.Fatalf("want ready, got %v", m)
	}
	c.send(map[string]any{"id": 2, "type": "shutdown"})
	if m := c.recvID(2); m == nil || m["type"] != "ok" || m["id"] != float64(2) {
		t.Fatalf("want ok for the shutdown, got %v", m)
	}
	if st := stop(); !st.Requested || st.Reason != "shutdown request" {
		t.Fatalf("stop: %+v, want the shutdown request", st)
	}
}

// TestBadFrameKeepsSession: a frame that is not a request gets BAD_REQUEST and the session goes on.
func TestBadFrameKeepsSession(t *testing.T) {
	sock, stop := startServer(t)
	defer stop()
	c := dial(t, sock)
	defer c.conn.Close()
	c.send(map[string]any{"id": 3, "argv": []string{"true"}})
	if m := c.recvID(3); m == nil || m["type"] != "error" || m["code"] != "BAD_REQUEST" {
		t.Fatalf("want BAD_REQUEST, got %v", m)
	}
	if out, code := c.runExec(5, "/bin/echo", "still here"); code != 0 || out != "still here\n" {
		t.Fatalf("after a bad frame: %q exit %d", out, code)
	}
}

func decodeB64(t *testing.T, s string) string {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Errorf("base64 %q: %v", s, err)
	}
	return string(b)
}
