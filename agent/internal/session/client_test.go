package session

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"rootforge/agent/internal/config"
	"rootforge/agent/internal/logx"
	"rootforge/agent/internal/procs"
	"rootforge/agent/internal/proto"
	"rootforge/agent/internal/sys"
)

// One process table and one reaper for the whole test binary: two reapers calling wait4(-1)
// would steal each other's children.
var table = procs.New(sys.Linux{})

func init() {
	logx.SetOutput(io.Discard, false)
	go table.RunReaper(make(chan struct{}))
}

func shared(img *config.Image) *Shared {
	if img == nil {
		img = &config.Image{}
	}
	return &Shared{
		Cfg: config.Defaults(), Img: img, Users: config.SystemUsers, Procs: table, Kill: syscall.Kill,
		Pdeathsig: true, Stopping: func() bool { return false },
		Ready:    func(id int64) []byte { return proto.NewFrame(id, "ready", 0).Finish() },
		Shutdown: func(bool) {},
	}
}

type msg = map[string]any

// client is a test host: it sends frames and files incoming ones by id.
type client struct {
	t       *testing.T
	conn    *os.File
	sess    *Session
	mu      sync.Mutex
	byID    map[int64][]msg
	changed chan struct{}
	eof     bool
}

func newClient(t *testing.T, sh *Shared) *client {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if err := syscall.SetNonblock(fd, true); err != nil {
			t.Fatal(err)
		}
	}
	c := &client{t: t, conn: os.NewFile(uintptr(fds[0]), "host"), byID: map[int64][]msg{}, changed: make(chan struct{})}
	c.sess = New(sh, os.NewFile(uintptr(fds[1]), "agent"), "test")
	go c.sess.Run(false)
	go c.readLoop()
	t.Cleanup(func() { c.conn.Close(); c.sess.Close() })
	return c
}

func (c *client) readLoop() {
	r := bufio.NewReader(c.conn)
	for {
		body, err := proto.ReadFrame(r)
		c.mu.Lock()
		if err != nil {
			c.eof = true
		} else {
			var m msg
			if jerr := json.Unmarshal(body, &m); jerr != nil {
				panic(jerr)
			}
			id := int64(m["id"].(float64))
			c.byID[id] = append(c.byID[id], m)
		}
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (c *client) sendRaw(b []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) send(m msg) {
	c.t.Helper()
	body, err := json.Marshal(m)
	if err != nil {
		c.t.Fatal(err)
	}
	hdr := make([]byte, 4)
	binary.BigEndian.PutUint32(hdr, uint32(len(body)))
	c.sendRaw(append(hdr, body...))
}

// next returns the next message for id, failing the test after timeout.
func (c *client) next(id int64, timeout time.Duration) msg {
	c.t.Helper()
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		if q := c.byID[id]; len(q) > 0 {
			c.byID[id] = q[1:]
			c.mu.Unlock()
			return q[0]
		}
		eof, ch := c.eof, c.changed
		c.mu.Unlock()
		if eof {
			c.t.Fatalf("connection closed while waiting for id %d", id)
		}
		select {
		case <-ch:
		case <-deadline:
			c.t.Fatalf("no message for id %d within %v", id, timeout)
		}
	}
}

// closed waits for the agent to close the connection.
func (c *client) closed(timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		eof, ch := c.eof, c.changed
		c.mu.Unlock()
		if eof {
			return true
		}
		select {
		case <-ch:
		case <-deadline:
			return false
		}
	}
}

type result struct {
	stdout, stderr []byte
	exit           msg
	pid            int
	err            msg
}

// run sends an exec and collects everything up to its exit (or error).
func (c *client) run(id int64, req msg, timeout time.Duration) result {
	c.t.Helper()
	req["id"], req["type"] = id, "exec"
	c.send(req)
	return c.collect(id, timeout)
}

func (c *client) collect(id int64, timeout time.Duration) result {
	c.t.Helper()
	var r result
	for {
		m := c.next(id, timeout)
		switch m["type"] {
		case "started":
			r.pid = int(m["pid"].(float64))
		case "stdout":
			r.stdout = append(r.stdout, b64(c.t, m["data"])...)
		case "stderr":
			r.stderr = append(r.stderr, b64(c.t, m["data"])...)
		case "exit":
			r.exit = m
			return r
		case "error":
			r.err = m
			return r
		default:
			c.t.Fatalf("unexpected message %v", m)
		}
	}
}

func b64(t *testing.T, v any) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(v.(string))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func enc(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
