// Package server runs the agent: it opens the transports, serves a session per connection,
// reaps children, and turns a shutdown request or SIGTERM/SIGINT into an orderly stop.
// What happens after the stop (power off as PID 1, exit as a service) is main's decision.
package server

import (
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"rootforge/agent/internal/config"
	"rootforge/agent/internal/logx"
	"rootforge/agent/internal/procs"
	"rootforge/agent/internal/proto"
	"rootforge/agent/internal/session"
	"rootforge/agent/internal/sys"
	"rootforge/agent/internal/transport"
)

// ProtocolVersion is sent in ready frames; it changes only for incompatible changes.
const ProtocolVersion = 1

// Options configure a Server.
type Options struct {
	Version string
	PID1    bool
	Cfg     *config.Config
	Img     *config.Image
	Sys     sys.System
	// Listen replaces the configured transports ("unix:/path").
	Listen []string
	// Stdio serves one session on stdin/stdout; its end stops the agent.
	Stdio bool
	// SysfsRoot and DevRoot locate virtio-serial ports ("/sys" and "/dev").
	SysfsRoot, DevRoot string
	// Gate, when set, holds execs and file requests until it is closed (PID 1's late boot).
	Gate <-chan struct{}
}

// Stop says why the server stopped.
type Stop struct {
	Reason string
	Reboot bool
	// Requested is true for a shutdown request, false for a signal or the end of stdio.
	Requested bool
}

// Server is one running agent.
type Server struct {
	o        Options
	procs    *procs.Table
	shared   *session.Shared
	bootID   string
	stopping atomic.Bool
	stopCh   chan Stop
	quit     chan struct{}

	mu        sync.Mutex
	sessions  map[*session.Session]bool
	listeners []*transport.Listener
	ports     []*transport.SerialPort
}

// New prepares a server; Run starts it.
func New(o Options) *Server {
	if o.SysfsRoot == "" {
		o.SysfsRoot, o.DevRoot = "/sys", "/dev"
	}
	s := &Server{o: o, procs: procs.New(o.Sys), stopCh: make(chan Stop, 1), quit: make(chan struct{}), sessions: map[*session.Session]bool{}}
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		s.bootID = strings.TrimSpace(string(b))
	}
	s.shared = &session.Shared{
		Cfg: o.Cfg, Img: o.Img, Users: config.SystemUsers, Procs: s.procs, Kill: o.Sys.Kill,
		Pdeathsig: !o.PID1, Ready: s.ready, Stopping: s.stopping.Load, Gate: o.Gate,
		Shutdown: func(reboot bool) { s.requestStop(Stop{Reason: "shutdown request", Reboot: reboot, Requested: true}) },
	}
	return s
}

// Procs is the process table (PID 1 reaps through it at halt).
func (s *Server) Procs() *procs.Table { return s.procs }

func (s *Server) requestStop(st Stop) {
	select {
	case s.stopCh <- st:
	default: // a stop is already pending
	}
}

// ready builds {id, type:"ready", version, protocol, pid1, uptimeMs, bootId}.
func (s *Server) ready(id int64) []byte {
	f := proto.NewFrame(id, "ready", 0)
	f.Str("version", s.o.Version).Int("protocol", ProtocolVersion).Bool("pid1", s.o.PID1).Int("uptimeMs", uptimeMs())
	if s.bootID != "" {
		f.Str("bootId", s.bootID)
	}
	return f.Finish()
}

// uptimeMs is CLOCK_BOOTTIME (time since boot, suspend included) in milliseconds.
func uptimeMs() int64 {
	var ts syscall.Timespec
	const clockBoottime = 7
	if _, _, e := syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockBoottime, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		return -1
	}
	return ts.Sec*1000 + ts.Nsec/1e6
}

// Run serves until a stop is requested, then stops: no new connections, SIGTERM to running
// execs, SIGKILL after the configured grace, queued frames flushed, connections closed.
func (s *Server) Run() Stop {
	go s.procs.RunReaper(s.quit)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGPIPE)
	defer signal.Stop(sigs)
	go func() {
		for {
			select {
			case sig := <-sigs:
				if sig == syscall.SIGTERM || sig == syscall.SIGINT {
					s.requestStop(Stop{Reason: "signal " + sig.String()})
				}
			case <-s.quit:
				return
			}
		}
	}()
	s.startTransports()
	st := <-s.stopCh
	logx.Info("stopping: " + st.Reason)
	s.stop()
	return st
}

func (s *Server) startTransports() {
	if s.o.Stdio {
		go func() {
			s.serve(transport.Stdio{}, "stdio")
			s.requestStop(Stop{Reason: "stdin closed"})
		}()
		return
	}
	if len(s.o.Listen) > 0 {
		for _, spec := range s.o.Listen {
			path := strings.TrimPrefix(spec, "unix:")
			if path == spec || path == "" {
				logx.Warn("Cannot listen: only unix:PATH is supported (" + spec + ")")
				s.requestStop(Stop{Reason: "bad --listen"})
				return
			}
			l, err := transport.ListenUnix(path)
			if err != nil {
				logx.Warn(err.Error())
				s.requestStop(Stop{Reason: "listen failed"})
				return
			}
			s.addListener(l)
		}
		return
	}
	for _, t := range s.o.Cfg.Transports {
		switch t {
		case "vsock":
			go s.runVsock()
		case "virtio-serial":
			go s.runSerial()
		}
	}
}

func (s *Server) addListener(l *transport.Listener) {
	s.mu.Lock()
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	logx.Info("listening on " + l.Name)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				if !s.stopping.Load() {
					logx.Warn("Cannot accept on " + l.Name + ": " + err.Error())
					time.Sleep(100 * time.Millisecond)
					continue
				}
				return
			}
			go s.serve(c, l.Name)
		}
	}()
}

// retry runs try until it succeeds or the server stops, logging the first failure only: a
// transport's driver may be a module that loads after the agent starts.
func (s *Server) retry(what string, try func() error) bool {
	warned := false
	for delay := 200 * time.Millisecond; ; {
		err := try()
		if err == nil {
			return true
		}
		if !warned {
			logx.Info(what + " not available yet (" + err.Error() + "); retrying in the background")
			warned = true
		}
		select {
		case <-s.quit:
			return false
		case <-time.After(delay):
		}
		if delay < 2*time.Second {
			delay *= 2
		}
	}
}

func (s *Server) runVsock() {
	var l *transport.Listener
	ok := s.retry("vsock", func() (err error) {
		l, err = transport.ListenVsock(s.o.Cfg.VsockPort)
		return err
	})
	if ok {
		if s.stopping.Load() {
			l.Close()
			return
		}
		s.addListener(l)
	}
}

func (s *Server) runSerial() {
	var port *transport.SerialPort
	ok := s.retry("virtio-serial port "+s.o.Cfg.SerialPortName, func() error {
		path, err := transport.FindSerialPort(s.o.SysfsRoot, s.o.DevRoot, s.o.Cfg.SerialPortName)
		if err != nil {
			return err
		}
		port, err = transport.OpenSerial(path)
		return err
	})
	if !ok {
		return
	}
	s.mu.Lock()
	s.ports = append(s.ports, port)
	s.mu.Unlock()
	logx.Info("serving virtio-serial port " + s.o.Cfg.SerialPortName)
	for !s.stopping.Load() {
		s.serve(port.Session(), "virtio-serial")
	}
}

// serve runs one session to its end.
func (s *Server) serve(conn interface {
	Read([]byte) (int, error)
	Write([]byte) (int, error)
	Close() error
}, name string) {
	ss := session.New(s.shared, conn, name)
	s.mu.Lock()
	if s.stopping.Load() {
		s.mu.Unlock()
		ss.Close()
		return
	}
	s.sessions[ss] = true
	s.mu.Unlock()
	logx.Debug("session on " + name)
	ss.Run(true)
	s.mu.Lock()
	delete(s.sessions, ss)
	s.mu.Unlock()
}

func (s *Server) stop() {
	s.mu.Lock()
	s.stopping.Store(true)
	for _, l := range s.listeners {
		if err := l.Close(); err != nil {
			logx.Debug("close " + l.Name + ": " + err.Error())
		}
	}
	list := make([]*session.Session, 0, len(s.sessions))
	for ss := range s.sessions {
		list = append(list, ss)
	}
	s.mu.Unlock()
	grace := time.Duration(s.o.Cfg.StopTimeoutMs) * time.Millisecond
	for _, ss := range list {
		ss.Signal(syscall.SIGTERM)
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		running := 0
		for _, ss := range list {
			running += ss.Running()
		}
		if running == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var wg sync.WaitGroup
	for _, ss := range list {
		wg.Add(1)
		go func(ss *session.Session) { defer wg.Done(); ss.Close() }(ss)
	}
	wg.Wait()
	close(s.quit)
}
