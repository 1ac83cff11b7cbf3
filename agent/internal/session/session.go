// Package session serves one host connection: it reads request frames, runs each operation
// (several at once: execs stream while files are read), and writes response and event frames
// through a single writer so frames never interleave.
//
// A session ends when the host disconnects, sends a frame the stream cannot recover from, or
// the agent shuts down. Ending a session kills the process groups of its running execs: nobody
// is left to read their output or exit status.
package session

import (
	"bufio"
	"errors"
	"io"
	"strconv"
	"sync"
	"syscall"
	"time"

	"rootforge/agent/internal/config"
	"rootforge/agent/internal/logx"
	"rootforge/agent/internal/procs"
	"rootforge/agent/internal/proto"
)

// Shared is what every session of one agent uses.
type Shared struct {
	Cfg   *config.Config
	Img   *config.Image
	Users config.Users
	Procs *procs.Table
	Kill  func(pid int, sig syscall.Signal) error
	// Pdeathsig kills an exec's main process if the agent dies (serve mode: the agent is not
	// PID 1, and a killed agent must not leave orphans behind).
	Pdeathsig bool
	// Ready builds the ready frame (hello's answer and the unsolicited greeting).
	Ready func(id int64) []byte
	// Shutdown is called after a shutdown request has been answered.
	Shutdown func(reboot bool)
	// Stopping reports that the agent is shutting down (new execs are refused).
	Stopping func() bool
	// DrainGrace is how long an exec's output is still read after its process exited, for
	// background children that inherited stdout; 0 means one second. Sessions only read it:
	// Shared is used by every connection's goroutine at once.
	DrainGrace time.Duration
	// Gate, when set, is closed once the system is fully up; execs and file requests wait for it.
	Gate <-chan struct{}
}

const (
	outQueue     = 64   // frames waiting for the writer (each at most ~90 KiB for output)
	maxExecs     = 1024 // running execs per session
	fileParallel = 4    // concurrent read_file/write_file per session (each holds <= 8 MiB)
	flushTimeout = 2 * time.Second
)

// Session is one connection.
type Session struct {
	sh   *Shared
	conn io.ReadWriteCloser
	name string

	out        chan []byte
	done       chan struct{}
	doneOnce   sync.Once
	writerDone chan struct{}
	files      chan struct{}
	handlers   sync.WaitGroup

	mu    sync.Mutex
	execs map[int64]*execution

	// hostToken is the "session" token of the last hello (read loop only).
	hostToken string
	// drainGrace is Shared.DrainGrace with its default applied (Shared is never written).
	drainGrace time.Duration
}

// New prepares a session over conn; Run serves it.
func New(sh *Shared, conn io.ReadWriteCloser, name string) *Session {
	grace := sh.DrainGrace
	if grace == 0 {
		grace = time.Second
	}
	return &Session{
		sh: sh, conn: conn, name: name, drainGrace: grace,
		out: make(chan []byte, outQueue), done: make(chan struct{}), writerDone: make(chan struct{}),
		files: make(chan struct{}, fileParallel), execs: map[int64]*execution{},
	}
}

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Run sends the unsolicited ready frame (id 0) if greet, then serves requests until the
// connection ends. It returns after running execs were killed and the writer finished.
func (s *Session) Run(greet bool) {
	go s.writer()
	if greet {
		s.send(s.sh.Ready(0))
	}
	err := s.readLoop()
	closedByUs := false
	select {
	case <-s.done:
		closedByUs = true
	default:
	}
	if err != nil && err != io.EOF && !closedByUs {
		logx.Warn("session " + s.name + " ended: " + err.Error())
	} else if closedByUs {
		logx.Debug("session " + s.name + " closed by the agent")
	} else {
		logx.Debug("session " + s.name + " ended by the host")
	}
	s.Close()
}

// Close ends the session: stops reading, kills running execs, flushes queued frames (bounded by
// flushTimeout) and closes the connection. Safe to call more than once and from any goroutine.
func (s *Session) Close() {
	s.doneOnce.Do(func() {
		close(s.done)
		s.killAll(syscall.SIGKILL)
		select {
		case <-s.writerDone:
		case <-time.After(flushTimeout):
			logx.Warn("session " + s.name + ": host not reading; dropping queued frames")
		}
		if err := s.conn.Close(); err != nil && !errors.Is(err, syscall.EBADF) {
			logx.Debug("session " + s.name + ": close: " + err.Error())
		}
	})
}

// send queues one finished frame; it gives up when the session has ended.
func (s *Session) send(frame []byte) bool {
	select {
	case s.out <- frame:
		return true
	case <-s.done:
		return false
	}
}

// writer is the only goroutine that writes to the connection. It flushes whenever the queue is
// empty, and once the session is done it writes what was already queued, then stops.
func (s *Session) writer() {
	defer close(s.writerDone)
	w := bufio.NewWriterSize(s.conn, 64<<10)
	write := func(f []byte) bool {
		if _, err := w.Write(f); err != nil {
			logx.Debug("session " + s.name + ": write: " + err.Error())
			go s.Close()
			return false
		}
		if len(s.out) == 0 {
			if err := w.Flush(); err != nil {
				logx.Debug("session " + s.name + ": write: " + err.Error())
				go s.Close()
				return false
			}
		}
		return true
	}
	for {
		select {
		case f := <-s.out:
			if !write(f) {
				return
			}
		case <-s.done:
			for {
				select {
				case f := <-s.out:
					if !write(f) {
						return
					}
				default:
					if err := w.Flush(); err != nil {
						logx.Debug("session " + s.name + ": flush: " + err.Error())
					}
					return
				}
			}
		}
	}
}

func (s *Session) readLoop() error {
	r := bufio.NewReaderSize(s.conn, 64<<10)
	for {
		body, err := proto.ReadFrame(r)
		if err != nil {
			var tl *proto.TooLargeError
			if errors.As(err, &tl) {
				s.send(proto.ErrorFrame(0, proto.CodeTooLarge, err.Error()))
			}
			return err
		}
		select {
		case <-s.done:
			return nil
		default:
		}
		req, err := proto.Decode(body)
		if err != nil {
			id := int64(0)
			if req != nil {
				id = req.ID
			}
			s.send(proto.ErrorFrame(id, proto.CodeBadRequest, err.Error()))
			continue
		}
		s.dispatch(req)
	}
}

func (s *Session) dispatch(r *proto.Request) {
	switch r.Type {
	case "hello":
		s.hello(r)
	case "exec":
		s.waitGate()
		s.startExec(r)
	case "stdin":
		s.stdin(r)
	case "signal":
		s.signal(r)
	case "read_file", "write_file":
		s.waitGate()
		s.fileOp(r)
	case "shutdown":
		reboot := r.Bool("reboot")
		if r.Err != nil {
			s.send(proto.ErrorFrame(r.ID, proto.CodeBadRequest, r.Err.Error()))
			return
		}
		s.send(proto.OK(r.ID))
		s.sh.Shutdown(reboot)
	default:
		s.send(proto.ErrorFrame(r.ID, proto.CodeUnsupported, "Cannot handle request: unknown type ("+strconv.Quote(r.Type)+")"))
	}
}

// waitGate holds a request until PID 1's late boot steps are done (a few hundred ms at most).
func (s *Session) waitGate() {
	if s.sh.Gate != nil {
		<-s.sh.Gate
	}
}

// fileOp runs file requests off the read loop, at most fileParallel at once, so a large read
// does not stall stdin or signals for other execs.
func (s *Session) fileOp(r *proto.Request) {
	select {
	case s.files <- struct{}{}:
	case <-s.done:
		return
	}
	s.handlers.Add(1)
	go func() {
		defer s.handlers.Done()
		defer func() { <-s.files }()
		if r.Type == "read_file" {
			s.send(readFile(r))
		} else {
			s.send(writeFile(r))
		}
	}()
}

// hello answers with ready. Its optional "session" token names the host's connection: on a
// virtio-serial port a host can detach and a new one attach between two reads, unseen by the
// agent, so a new token is how the agent learns that the execs of the previous host have
// nobody left to report to; it kills them as a session end would.
func (s *Session) hello(r *proto.Request) {
	token := r.Str("session")
	if r.Err != nil {
		s.send(proto.ErrorFrame(r.ID, proto.CodeBadRequest, r.Err.Error()))
		return
	}
	if token != "" {
		if s.hostToken != "" && token != s.hostToken {
			logx.Info("session " + s.name + ": a new host took over; killing the previous host's execs")
			s.killAll(syscall.SIGKILL)
		}
		s.hostToken = token
	}
	s.send(s.sh.Ready(r.ID))
}
