package session

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"rootforge/agent/internal/config"
	"rootforge/agent/internal/logx"
	"rootforge/agent/internal/proto"
)

// execution is one running exec. Its process is the leader of a new process group (Setpgid),
// so a timeout or a group signal reaches everything it started that did not leave the group.
type execution struct {
	id       int64
	pid      int
	stdin    chan []byte // nil unless the request set stdin: true
	stdinEOF bool        // touched only by the read loop
	exited   chan struct{}
	timedOut atomic.Bool
}

const (
	outputChunk = 64 << 10
	stdinQueue  = 8 // queued stdin frames per exec before the read loop waits (back-pressure)
	maxTimeout  = 1<<31 - 1
)

// execSpec is a validated exec request.
type execSpec struct {
	path string
	argv []string
	env  []string
	dir  string
	cred *syscall.Credential
}

func (s *Session) startExec(r *proto.Request) {
	argv := r.Strings("argv")
	reqEnv := r.StringMap("env")
	clearEnv := r.Bool("clearEnv")
	cwd := r.Str("cwd")
	user := r.Str("user")
	uid := r.Int("uid", -1, 0, 0xfffffffe)
	gid := r.Int("gid", -1, 0, 0xfffffffe)
	wantStdin := r.Bool("stdin")
	timeoutMs := r.Int("timeoutMs", 0, 0, maxTimeout)
	if r.Err == nil && len(argv) == 0 {
		r.Fail("argv", "must name a program")
	}
	if r.Err != nil {
		s.send(proto.ErrorFrame(r.ID, proto.CodeBadRequest, r.Err.Error()))
		return
	}
	if s.sh.Stopping() {
		s.send(proto.ErrorFrame(r.ID, proto.CodeShutdown, "Cannot exec: the agent is shutting down"))
		return
	}
	s.mu.Lock()
	_, dup := s.execs[r.ID]
	n := len(s.execs)
	s.mu.Unlock()
	if dup {
		s.send(proto.ErrorFrame(r.ID, proto.CodeBadRequest, "Cannot exec: id already names a running exec ("+strconv.FormatInt(r.ID, 10)+")"))
		return
	}
	if n >= maxExecs {
		s.send(proto.ErrorFrame(r.ID, proto.CodeBusy, "Cannot exec: too many running execs ("+strconv.Itoa(n)+")"))
		return
	}
	spec, err := s.resolve(argv, reqEnv, clearEnv, cwd, user, uid, gid)
	if err != nil {
		s.send(proto.ErrorFrame(r.ID, proto.CodeExecFailed, err.Error()))
		return
	}
	s.spawn(r.ID, spec, wantStdin, time.Duration(timeoutMs)*time.Millisecond)
}

// resolve applies the defaults: image env < agent.json env < request env (or the request env
// alone with clearEnv); request cwd, else the default workdir; request user/uid/gid, else the
// default user.
func (s *Session) resolve(argv []string, reqEnv map[string]string, clearEnv bool, cwd, user string, uid, gid int64) (*execSpec, error) {
	cfg, img := s.sh.Cfg, s.sh.Img
	var env *config.Env
	if clearEnv {
		env = config.NewEnv(nil).Merge(reqEnv)
	} else {
		env = cfg.BaseEnv(img).Merge(reqEnv)
	}
	spec := user
	if spec == "" {
		spec = cfg.DefaultUser(img)
	}
	if uid >= 0 {
		spec = strconv.FormatInt(uid, 10)
	}
	cred, err := s.sh.Users.Resolve(spec)
	if err != nil {
		return nil, err
	}
	if gid >= 0 {
		cred.GID = uint32(gid)
	}
	if _, ok := env.Get("HOME"); !ok && !clearEnv {
		env.Set("HOME", cred.Home)
	}
	dir := cwd
	def := cfg.DefaultWorkdir(img)
	if dir == "" {
		dir = def
		if _, err := os.Stat(dir); err != nil {
			logx.Debug("default workdir " + dir + " missing, using /")
			dir = "/"
		}
	} else if !filepath.IsAbs(dir) {
		dir = filepath.Join(def, dir)
	}
	// Checked here because the child's chdir failure reads like a missing program.
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		reason := "not a directory"
		if err != nil {
			reason = err.(*os.PathError).Err.Error()
		}
		return nil, errors.New("Cannot exec: working directory unusable: " + reason + " (" + dir + ")")
	}
	pathVar, ok := env.Get("PATH")
	if !ok {
		pathVar = config.DefaultPath
	}
	path, err := lookPath(argv[0], pathVar, dir)
	if err != nil {
		return nil, err
	}
	out := &execSpec{path: path, argv: argv, env: env.List(), dir: dir}
	// Switching credentials needs CAP_SETUID; skip it when the target is who we already are
	// (a non-root agent in tests, or root running as root).
	if int(cred.UID) != os.Geteuid() || int(cred.GID) != os.Getegid() || len(cred.Groups) > 0 && os.Geteuid() == 0 {
		out.cred = &syscall.Credential{Uid: cred.UID, Gid: cred.GID, Groups: cred.Groups}
	}
	return out, nil
}

// lookPath finds name the way execvp does, but in the exec's PATH rather than the agent's.
func lookPath(name, pathVar, dir string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, d := range filepath.SplitList(pathVar) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, name)
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("Cannot exec: executable file not found in PATH (" + name + ")")
}

func (s *Session) spawn(id int64, spec *execSpec, wantStdin bool, timeout time.Duration) {
	fail := func(err error) {
		s.send(proto.ErrorFrame(id, proto.CodeExecFailed, "Cannot exec: "+err.Error()+" ("+spec.path+")"))
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		fail(err)
		return
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW)
		fail(err)
		return
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW, outR, outW)
		fail(err)
		return
	}
	attr := &os.ProcAttr{
		Dir: spec.dir, Env: spec.env, Files: []*os.File{inR, outW, errW},
		Sys: &syscall.SysProcAttr{Setpgid: true, Credential: spec.cred},
	}
	if s.sh.Pdeathsig {
		attr.Sys.Pdeathsig = syscall.SIGKILL
	}
	pid, exitCh, err := s.sh.Procs.Start(func() (int, error) {
		p, err := os.StartProcess(spec.path, spec.argv, attr)
		if err != nil {
			return 0, err
		}
		pid := p.Pid
		// The table waits for the child; Release only drops os.Process's handle.
		if err := p.Release(); err != nil {
			logx.Debug("release: " + err.Error())
		}
		return pid, nil
	})
	// The child holds its ends now; ours must go or EOF never comes.
	closeAll(inR, outW, errW)
	if err != nil {
		closeAll(inW, outR, errR)
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // "fork/exec <path>: " says nothing the message does not
		}
		fail(err)
		return
	}
	e := &execution{id: id, pid: pid, exited: make(chan struct{})}
	if wantStdin {
		e.stdin = make(chan []byte, stdinQueue)
		go s.feedStdin(e, inW)
	} else {
		closeAll(inW)
	}
	s.mu.Lock()
	s.execs[id] = e
	s.mu.Unlock()
	f := proto.NewFrame(id, "started", 0)
	f.Int("pid", int64(pid))
	s.send(f.Finish())
	go s.supervise(e, exitCh, outR, errR, timeout)
}

func closeAll(files ...*os.File) {
	for _, f := range files {
		if err := f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			logx.Debug("close " + f.Name() + ": " + err.Error())
		}
	}
}

// supervise streams output, enforces the timeout, and sends the exit event after all output.
func (s *Session) supervise(e *execution, exitCh <-chan syscall.WaitStatus, outR, errR *os.File, timeout time.Duration) {
	var pumps sync.WaitGroup
	pumps.Add(2)
	go s.pump(e.id, "stdout", outR, &pumps)
	go s.pump(e.id, "stderr", errR, &pumps)
	var timer *time.Timer
	if timeout > 0 {
		timer = time.AfterFunc(timeout, func() {
			e.timedOut.Store(true)
			s.killGroup(e, syscall.SIGKILL)
		})
	}
	var ws syscall.WaitStatus
	select {
	case ws = <-exitCh:
	case <-s.done:
		s.killGroup(e, syscall.SIGKILL)
		ws = <-exitCh
	}
	if timer != nil {
		timer.Stop()
	}
	close(e.exited)
	// Output written just before exit is still in the pipes: read to EOF, but only for
	// DrainGrace if a background child keeps a pipe open.
	drained := make(chan struct{})
	go func() { pumps.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(s.drainGrace):
		logx.Debug("exec " + strconv.FormatInt(e.id, 10) + ": output still open after exit; closing it")
	}
	closeAll(outR, errR)
	<-drained
	s.mu.Lock()
	delete(s.execs, e.id)
	s.mu.Unlock()
	s.send(exitFrame(e, ws))
}

func exitFrame(e *execution, ws syscall.WaitStatus) []byte {
	f := proto.NewFrame(e.id, "exit", 0)
	if ws.Signaled() {
		f.Null("code").Str("signal", signalName(ws.Signal()))
	} else {
		f.Int("code", int64(ws.ExitStatus())).Null("signal")
	}
	f.Bool("timedOut", e.timedOut.Load())
	return f.Finish()
}

// pump copies one pipe to output events in order, one read per frame.
func (s *Session) pump(id int64, stream string, r *os.File, wg *sync.WaitGroup) {
	defer wg.Done()
	buf := make([]byte, outputChunk)
	for {
		n, err := r.Read(buf)
		if n > 0 && !s.send(proto.Output(id, stream, buf[:n])) {
			return
		}
		if err != nil {
			return
		}
	}
}

func (s *Session) feedStdin(e *execution, w *os.File) {
	defer closeAll(w)
	broken := false
	for {
		select {
		case chunk, ok := <-e.stdin:
			if !ok {
				return
			}
			if broken {
				continue
			}
			if _, err := w.Write(chunk); err != nil {
				// The process closed stdin or exited: later input has nowhere to go.
				logx.Debug("exec " + strconv.FormatInt(e.id, 10) + ": stdin: " + err.Error())
				broken = true
			}
		case <-e.exited:
			return
		}
	}
}

// stdin handles {id, type:"stdin", data?, eof?} for a running exec; input for an exec that has
// already finished is dropped (the host cannot know it finished until the exit event arrives).
func (s *Session) stdin(r *proto.Request) {
	data := r.Data("data")
	eof := r.Bool("eof")
	if r.Err != nil {
		s.send(proto.ErrorFrame(r.ID, proto.CodeBadRequest, r.Err.Error()))
		return
	}
	s.mu.Lock()
	e := s.execs[r.ID]
	s.mu.Unlock()
	if e == nil || e.stdin == nil || e.stdinEOF {
		logx.Debug("stdin for exec " + strconv.FormatInt(r.ID, 10) + " dropped: not running or not reading stdin")
		return
	}
	if len(data) > 0 {
		select {
		case e.stdin <- data:
		case <-e.exited:
			return
		case <-s.done:
			return
		}
	}
	if eof {
		e.stdinEOF = true
		close(e.stdin)
	}
}

// signal handles {id, type:"signal", target, signal, group?}.
func (s *Session) signal(r *proto.Request) {
	target := r.Int("target", -1, 0, 1<<53-1)
	group := !r.Has("group") || r.Bool("group")
	sig, err := parseSignal(r.Raw("signal"))
	if r.Err == nil && target < 0 {
		r.Fail("target", "must be the id of a running exec")
	}
	if r.Err == nil && err != nil {
		r.Fail("signal", err.Error())
	}
	if r.Err != nil {
		s.send(proto.ErrorFrame(r.ID, proto.CodeBadRequest, r.Err.Error()))
		return
	}
	s.mu.Lock()
	e := s.execs[target]
	s.mu.Unlock()
	notRunning := "Cannot signal exec: not running (" + strconv.FormatInt(target, 10) + ")"
	if e == nil {
		s.send(proto.ErrorFrame(r.ID, proto.CodeNotRunning, notRunning))
		return
	}
	select {
	case <-e.exited:
		s.send(proto.ErrorFrame(r.ID, proto.CodeNotRunning, notRunning))
		return
	default:
	}
	pid := e.pid
	if group {
		pid = -pid
	}
	if err := s.sh.Kill(pid, sig); err != nil {
		code := proto.CodeIO
		if err == syscall.ESRCH {
			code = proto.CodeNotRunning
		}
		s.send(proto.ErrorFrame(r.ID, code, "Cannot signal exec: "+err.Error()+" ("+strconv.FormatInt(target, 10)+")"))
		return
	}
	s.send(proto.OK(r.ID))
}

// killGroup signals the exec's process group and, in case it left the group, the process.
func (s *Session) killGroup(e *execution, sig syscall.Signal) {
	for _, pid := range []int{-e.pid, e.pid} {
		if err := s.sh.Kill(pid, sig); err != nil && err != syscall.ESRCH {
			logx.Warn("Cannot kill exec " + strconv.FormatInt(e.id, 10) + ": " + err.Error() + " (pid " + strconv.Itoa(pid) + ")")
		}
	}
}

// killAll signals every running exec of the session.
func (s *Session) killAll(sig syscall.Signal) {
	s.mu.Lock()
	list := make([]*execution, 0, len(s.execs))
	for _, e := range s.execs {
		list = append(list, e)
	}
	s.mu.Unlock()
	for _, e := range list {
		select {
		case <-e.exited:
		default:
			s.killGroup(e, sig)
		}
	}
}

// Running is the number of execs whose exit event has not been sent yet.
func (s *Session) Running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.execs)
}

// Signal sends sig to every running exec (the agent's shutdown uses SIGTERM first).
func (s *Session) Signal(sig syscall.Signal) { s.killAll(sig) }
