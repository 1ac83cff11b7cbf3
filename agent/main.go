// rootforge-agent is the guest agent of rootforge images: it runs commands and moves files for
// the host over vsock or virtio-serial (docs/agent-protocol.md). Started by the kernel as PID 1
// it is also the init: it mounts the API filesystems, reaps orphans and powers the VM off at
// the end. Started any other way (systemd, OpenRC, a shell) it only serves.
//
//	rootforge-agent [serve] [--config PATH] [--image-config PATH] [--listen unix:PATH]...
//	                [--stdio] [--allow-poweroff] [--verbose]
//	rootforge-agent --version
package main

import (
	"os"
	"strings"
	"syscall"
	"time"

	"rootforge/agent/internal/config"
	"rootforge/agent/internal/logx"
	"rootforge/agent/internal/pid1"
	"rootforge/agent/internal/server"
	"rootforge/agent/internal/sys"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: rootforge-agent [serve] [options]
       rootforge-agent --version

Runs as init when it is PID 1, as a service otherwise.

options:
  --config PATH          agent config (default /etc/rootforge/agent.json)
  --image-config PATH    image config (default /etc/rootforge/image.json)
  --instance-config PATH sandbox instance settings (default /etc/rootforge/instance.json)
  --listen unix:PATH     serve on a Unix socket instead of the configured transports (repeatable)
  --stdio                serve one session on stdin/stdout; exit when stdin closes
  --allow-poweroff       a shutdown request may power the machine off (service mode)
  --verbose              log every session and exec
`

type args struct {
	configPath, imagePath string
	instancePath          string
	listen                []string
	stdio, allowPoweroff  bool
	verbose               bool
}

func die(code int, msg string) {
	os.Stderr.WriteString("rootforge-agent: " + msg + "\n")
	os.Exit(code)
}

func parseArgs(argv []string) args {
	a := args{configPath: config.DefaultConfigPath, imagePath: config.DefaultImagePath, instancePath: config.DefaultInstancePath}
	value := func(i *int, name string) string {
		if *i+1 >= len(argv) {
			die(2, "Cannot parse arguments: "+name+" needs a value")
		}
		*i++
		return argv[*i]
	}
	// "--config=PATH" is "--config PATH".
	var split []string
	for _, arg := range argv {
		if k, v, ok := strings.Cut(arg, "="); ok && strings.HasPrefix(k, "--") {
			split = append(split, k, v)
		} else {
			split = append(split, arg)
		}
	}
	argv = split
	for i := 0; i < len(argv); i++ {
		arg := argv[i]
		switch arg {
		case "--version", "-V":
			os.Stdout.WriteString(version + "\n")
			os.Exit(0)
		case "--help", "-h":
			os.Stdout.WriteString(usage)
			os.Exit(0)
		case "serve", "init":
			if i != 0 {
				die(2, "Cannot parse arguments: the command must come first ("+arg+")")
			}
		case "--config":
			a.configPath = value(&i, arg)
		case "--image-config":
			a.imagePath = value(&i, arg)
		case "--instance-config":
			a.instancePath = value(&i, arg)
		case "--listen":
			a.listen = append(a.listen, value(&i, arg))
		case "--stdio":
			a.stdio = true
		case "--allow-poweroff":
			a.allowPoweroff = true
		case "--verbose", "-v":
			a.verbose = true
		default:
			die(2, "Cannot parse arguments: unknown argument ("+arg+")\n"+usage)
		}
	}
	return a
}

func main() {
	isPID1 := os.Getpid() == 1
	linux := sys.Linux{}
	if isPID1 {
		// Before anything opens a file: fds 0-2 may be missing (see EnsureStdio).
		if err := linux.EnsureStdio(); err != nil {
			logx.Warn(err.Error())
		}
	}
	a := parseArgs(os.Args[1:])
	if len(os.Args) > 1 && os.Args[1] == "init" && !isPID1 {
		die(2, "Cannot run as init: not PID 1 (pid "+itoa(os.Getpid())+")")
	}
	logx.SetDebug(a.verbose)
	cfg, warnings, err := config.Load(a.configPath)
	for _, w := range warnings {
		logx.Warn(w)
	}
	if err != nil {
		if !isPID1 {
			die(2, err.Error())
		}
		logx.Warn(err.Error() + "; using defaults")
	}
	img, err := config.LoadImage(a.imagePath)
	if err != nil {
		if !isPID1 {
			die(2, err.Error())
		}
		logx.Warn(err.Error() + "; using defaults")
	}
	// a sandbox instance's settings for this boot (rootforge boot DIR); absent for an image
	if inst, err := config.LoadInstance(a.instancePath); err != nil {
		logx.Warn(err.Error() + "; booting without the instance settings")
	} else if inst != nil {
		_ = cfg.ApplyInstance(inst)
	}
	if cfg.Debug {
		logx.SetDebug(true)
	}
	if a.allowPoweroff {
		cfg.AllowPoweroff = true
	}
	logx.Info("version " + version + " starting (pid " + itoa(os.Getpid()) + ")")

	var state *pid1.State
	var gate chan struct{}
	if isPID1 {
		// Answer the host as early as possible; the slower duties (hostname, lo, shares) run
		// meanwhile and execs wait for them.
		state, _ = pid1.BootEarly(linux, cfg)
		gate = make(chan struct{})
		go func() {
			pid1.BootLate(linux, cfg, state)
			close(gate)
		}()
	}
	if !isPID1 && len(cfg.InstanceMounts) > 0 {
		// as a service (wrapper, systemd, OpenRC) the agent still mounts the instance's shares
		if os.Geteuid() != 0 {
			logx.Warn("Cannot mount the instance's shares: not root")
		} else if mounted, err := pid1.MountMissing(linux, cfg.InstanceMounts); err != nil {
			logx.Warn(err.Error())
		} else if len(mounted) > 0 {
			logx.Info("mounted " + strings.Join(mounted, " "))
		}
	}
	srv := server.New(server.Options{Version: version, PID1: isPID1, Cfg: cfg, Img: img, Sys: linux, Listen: a.listen, Stdio: a.stdio, Gate: gate})
	stop := srv.Run()

	if isPID1 {
		<-gate // the late boot steps are short; halt needs the mounts they made
		cmd := sys.RebootPowerOff
		if stop.Reboot || cfg.PowerOffMode == "reboot" {
			cmd = sys.RebootRestart
		}
		err := pid1.Halt(linux, state, srv.Procs().Reap, time.Duration(cfg.StopTimeoutMs)*time.Millisecond, cmd)
		// Still here: the reboot call failed. Exiting makes the kernel panic, which with
		// panic=-1 on the command line ends the VM too.
		logx.Warn(errString(err) + "; exiting (kernel panic)")
		os.Exit(1)
	}
	if stop.Requested && cfg.AllowPoweroff {
		powerOff(stop.Reboot)
	}
	logx.Info("exiting")
	os.Exit(0)
}

// powerOff asks the service manager to stop the machine (poweroff/reboot commands: systemd and
// OpenRC then stop services cleanly); if that fails, it syncs and calls reboot(2) itself.
func powerOff(reboot bool) {
	name, cmd := "poweroff", sys.RebootPowerOff
	if reboot {
		name, cmd = "reboot", sys.RebootRestart
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p, err := os.StartProcess(dir+"/"+name, []string{name}, &os.ProcAttr{Files: []*os.File{nil, os.Stderr, os.Stderr}})
		if err != nil {
			continue
		}
		done := make(chan error, 1)
		go func() {
			st, err := p.Wait()
			if err == nil && !st.Success() {
				err = errorString(st.String())
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil {
				logx.Info(name + " started")
				return
			}
			logx.Warn("Cannot " + name + ": " + err.Error() + " (" + dir + "/" + name + ")")
		case <-time.After(30 * time.Second):
			logx.Warn("Cannot " + name + ": no answer in 30 s (" + dir + "/" + name + ")")
		}
		break
	}
	syscall.Sync()
	if err := syscall.Reboot(cmd); err != nil {
		logx.Warn("Cannot " + name + ": reboot(2) failed (" + err.Error() + ")")
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

func errString(err error) string {
	if err == nil {
		return "reboot(2) returned"
	}
	return err.Error()
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
